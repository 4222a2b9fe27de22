import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { openDatabase } from '../src/db'
import { keyStore } from '../src/platform/keys/store'
import { hashKey, verifyKey } from '../src/platform/keys'
import { tempDir } from './helpers'

const root = join(import.meta.dir, '..')

async function run(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, 'run', 'keys', ...args], { cwd: root, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe('bun run keys', () => {
  test('create prints a working key last, list shows it, revoke kills it', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const created = await run(['create', 'ivy', '--scope', 'tasks:read', '--scope', 'predict'], { DATABASE_URL: databaseUrl })
    expect(created.code).toBe(0)
    const raw = created.stdout.trim().split('\n').at(-1)!
    expect(raw).toMatch(/^tm_[A-Za-z0-9]{8}_[A-Za-z0-9]{32,}$/)
    const prefix = raw.split('_').slice(0, 2).join('_')

    const database = await openDatabase(databaseUrl)
    const principal = await verifyKey(keyStore(database), raw)
    expect(principal).toEqual({ keyId: prefix.slice(3), owner: 'ivy', scopes: new Set(['tasks:read', 'predict']), expiresAt: null })

    const listed = await run(['list', 'ivy'], { DATABASE_URL: databaseUrl })
    expect(listed.stdout).toContain(prefix)
    expect(listed.stdout).toContain('tasks:read predict')
    expect(listed.stdout).toContain('active')
    expect(listed.stdout).not.toContain(raw.split('_')[2]!)

    const revoked = await run(['revoke', prefix], { DATABASE_URL: databaseUrl })
    expect(revoked.code).toBe(0)
    expect(await verifyKey(keyStore(database), raw)).toBeNull()
    expect((await run(['list', 'ivy'], { DATABASE_URL: databaseUrl })).stdout).toContain('revoked')
    expect((await run(['revoke', prefix], { DATABASE_URL: databaseUrl })).code).toBe(1)
    await database.close()
  })

  test('default scopes are the five non-admin scopes', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const created = await run(['create', 'jay'], { DATABASE_URL: databaseUrl })
    const database = await openDatabase(databaseUrl)
    const principal = await verifyKey(keyStore(database), created.stdout.trim().split('\n').at(-1)!)
    expect(principal?.scopes).toEqual(new Set(['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict']))
    await database.close()
  })

  test('an owner the keys API accepts is accepted (a provider\'s sub like auth0|carol); a control character is refused', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const created = await run(['create', 'auth0|carol', '--scope', 'tasks:read'], { DATABASE_URL: databaseUrl })
    expect(created.code).toBe(0)
    const database = await openDatabase(databaseUrl)
    expect((await verifyKey(keyStore(database), created.stdout.trim().split('\n').at(-1)!))?.owner).toBe('auth0|carol')
    await database.close()
    expect((await run(['list', 'auth0|carol'], { DATABASE_URL: databaseUrl })).stdout).toContain('tasks:read')
    const bad = await run(['create', 'carol\u0007'], { DATABASE_URL: databaseUrl })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('owner must be 1 to 255 characters, without control characters')
    expect((await run(['create', 'x'.repeat(256)], { DATABASE_URL: databaseUrl })).code).toBe(2)
  })

  test('bad input exits non-zero with a clear message', async () => {
    const env = { DATABASE_URL: `sqlite:${join(tempDir(), 'app.sqlite')}` }
    const badScope = await run(['create', 'kim', '--scope', 'root'], env)
    expect(badScope.code).toBe(2)
    expect(badScope.stderr).toContain('unknown scope root')
    expect((await run(['explode', 'kim'], env)).code).toBe(2)
    expect((await run(['create'], env)).code).toBe(2)
    expect((await run(['revoke', 'not a prefix'], env)).stderr).toContain('not a key prefix')
  })

  test('--expires sets when the key expires; list shows label, expiry and state, newest first', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const env = { DATABASE_URL: databaseUrl }
    const cases: Array<[string, number]> = [['3600', 3600], ['3600s', 3600], ['45m', 2700], ['12h', 43_200], ['30d', 2_592_000]]
    const database = await openDatabase(databaseUrl)
    const keys = keyStore(database)
    for (const [value, seconds] of cases) {
      const before = Date.now()
      const created = await run(['create', 'lou', '--expires', value, '--label', `for ${value}`], env)
      expect(created.code).toBe(0)
      const raw = created.stdout.trim().split('\n').at(-1)!
      const record = await keys.byId(raw.split('_')[1]!)
      expect(record?.expiresAt).toBeGreaterThanOrEqual(before + seconds * 1000)
      expect(record?.expiresAt).toBeLessThanOrEqual(Date.now() + seconds * 1000)
      expect(record?.label).toBe(`for ${value}`)
      expect(created.stdout).toContain(`expires ${new Date(record!.expiresAt!).toISOString()}`)
      expect((await verifyKey(keys, raw))?.owner).toBe('lou')
    }
    const forever = await run(['create', 'lou'], env)
    const foreverId = forever.stdout.trim().split('\n').at(-1)!.split('_')[1]!
    // An expired key, as the keys API would have left it.
    await keys.insert({ id: 'Expired9', owner: 'lou', hash: hashKey('x'), scopes: 'predict', label: null, createdAt: Date.now() + 60_000, expiresAt: Date.now() - 1, revokedAt: null })
    const lines = (await run(['list', 'lou'], env)).stdout.trim().split('\n')
    expect(lines.length).toBe(cases.length + 2)
    expect(lines[0]).toStartWith('tm_Expired9\tpredict\t')
    expect(lines[0]).toEndWith('\texpired')
    expect(lines[1]).toStartWith(`tm_${foreverId}\t`)
    expect(lines[1]).toContain('\tnever expires\tactive')
    expect(lines[2]).toMatch(/\texpires \d{4}-\d\d-\d\dT[\d:.]+Z\tactive\t"for 30d"$/)
    expect(lines.at(-1)).toEndWith('\t"for 3600"')
    await database.close()
  })

  test('a bad --expires exits non-zero with a clear message and creates nothing', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    for (const value of ['soon', '0', '0s', '-5', '1.5h', '2w', '3651d', '']) {
      const result = await run(['create', 'max', `--expires=${value}`], { DATABASE_URL: databaseUrl })
      expect(result.code, value).toBe(2)
      expect(result.stderr, value).toContain(`--expires ${JSON.stringify(value)}: expected seconds or a number with s, m, h or d`)
    }
    expect((await run(['list', 'max', '--expires', '1d'], { DATABASE_URL: databaseUrl })).code).toBe(2)
    expect((await run(['list', 'max'], { DATABASE_URL: databaseUrl })).stdout).toContain('no keys for max')
  })
})
