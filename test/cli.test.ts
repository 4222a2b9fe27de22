import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { openDatabase } from '../src/db'
import { keyStore } from '../src/platform/keys/store'
import { verifyKey } from '../src/platform/keys'
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
    expect(principal).toEqual({ keyId: prefix.slice(3), owner: 'ivy', scopes: new Set(['tasks:read', 'predict']) })

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

  test('bad input exits non-zero with a clear message', async () => {
    const env = { DATABASE_URL: `sqlite:${join(tempDir(), 'app.sqlite')}` }
    const badScope = await run(['create', 'kim', '--scope', 'root'], env)
    expect(badScope.code).toBe(2)
    expect(badScope.stderr).toContain('unknown scope root')
    expect((await run(['explode', 'kim'], env)).code).toBe(2)
    expect((await run(['create'], env)).code).toBe(2)
    expect((await run(['revoke', 'not a prefix'], env)).stderr).toContain('not a key prefix')
  })
})
