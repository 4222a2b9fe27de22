import { describe, expect, test } from 'bun:test'
import { createKey, hashKey, type KeyStore } from '../src/platform/keys'
import { createApp } from '../src/app'
import { createLogger } from '../src/platform/logger'
import { inProcess, problemOf, testApp } from './helpers'

describe('API key authentication', () => {
  test('no key is 401 with WWW-Authenticate', async () => {
    await using t = await testApp()
    const response = await t.request('/v1/tasks')
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toStartWith('Bearer realm="taskmesh"')
    await problemOf(response)
  })

  test('malformed, unknown, wrong-secret and revoked keys are 401', async () => {
    await using t = await testApp()
    const good = await t.key()
    const { id, raw: revoked } = await createKey(t.keys, 'x', ['tasks:read'])
    await t.keys.revoke(id, Date.now())
    const wrongSecret = good.slice(0, -1) + (good.endsWith('a') ? 'b' : 'a')
    for (const key of ['nonsense', 'tm_short_x', 'tm_AAAAAAAA_' + 'b'.repeat(40), wrongSecret, revoked, `${good} `.repeat(2)]) {
      const response = await t.request('/v1/tasks', { headers: { 'x-api-key': key } })
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toContain('invalid_token')
    }
    expect((await t.request('/v1/tasks', { key: good })).status).toBe(200)
  })

  test('Authorization: Bearer works like X-API-Key', async () => {
    await using t = await testApp()
    const key = await t.key()
    expect((await t.request('/v1/tasks', { headers: { authorization: `Bearer ${key}` } })).status).toBe(200)
    expect((await t.request('/v1/tasks', { headers: { authorization: `Basic ${btoa('a:b')}` } })).status).toBe(401)
  })

  test('a key without the scope is 403; admin implies every scope', async () => {
    await using t = await testApp()
    const reader = await t.key(undefined, ['tasks:read'])
    expect((await t.request('/v1/tasks', { key: reader })).status).toBe(200)
    const refused = await t.request('/v1/tasks', { method: 'POST', key: reader, json: { title: 'x' } })
    expect(refused.status).toBe(403)
    expect(refused.headers.get('www-authenticate')).toContain('scope="tasks:write"')
    await problemOf(refused)
    const writerOnly = await t.key(undefined, ['tasks:write'])
    expect((await t.request('/v1/tasks', { key: writerOnly })).status).toBe(403)
    const admin = await t.key(undefined, ['admin'])
    expect((await t.request('/v1/tasks', { method: 'POST', key: admin, json: { title: 'x' } })).status).toBe(201)
  })

  test('authentication is decided before the body schema', async () => {
    await using t = await testApp()
    const noKey = await t.request('/v1/tasks', { method: 'POST', json: { nonsense: true } })
    expect(noKey.status).toBe(401)
    const reader = await t.key(undefined, ['tasks:read'])
    const noScope = await t.request('/v1/tasks', { method: 'POST', key: reader, json: { nonsense: true } })
    expect(noScope.status).toBe(403)
  })

  test('keys are stored only as SHA-256', async () => {
    await using t = await testApp()
    const { id, raw } = await createKey(t.keys, 'dana', ['tasks:read'])
    const record = await t.keys.byId(id)
    expect(record?.hash).toEqual(new Uint8Array(new Bun.CryptoHasher('sha256').update(raw).digest()))
    const secret = raw.split('_')[2]!
    expect(JSON.stringify(await t.sql('SELECT * FROM api_keys'))).not.toContain(secret)
    if (t.config.databaseUrl.startsWith('sqlite:')) {
      // Not in any page of the file or the WAL either, not even a deleted one.
      for (const file of [`${t.dir}/app.sqlite`, `${t.dir}/app.sqlite-wal`]) {
        const bytes = (await Bun.file(file).exists()) ? await Bun.file(file).bytes() : new Uint8Array()
        expect(Buffer.from(bytes).includes(secret)).toBe(false)
      }
    }
  })
})

describe('key cache', () => {
  test('a revoked key works until its cache time has passed, then is 401', async () => {
    const { Credentials, KEY_CACHE_MS } = await import('../src/platform/auth')
    await using t = await testApp()
    let now = Date.now()
    const app = createApp({ config: t.config, database: t.database, keys: t.keys, log: createLogger('silent'), credentials: new Credentials(t.keys, { now: () => now }) })
    const request = inProcess(app)
    const { id, raw } = await createKey(t.keys, 'vic', ['tasks:read'])
    expect((await request('/v1/tasks', { key: raw })).status).toBe(200)
    await t.keys.revoke(id, Date.now())
    now += KEY_CACHE_MS - 1
    expect((await request('/v1/tasks', { key: raw })).status).toBe(200)
    now += 1
    expect((await request('/v1/tasks', { key: raw })).status).toBe(401)
  })

  test('a refused key is remembered as long; a key created meanwhile works once that time has passed', async () => {
    const { Credentials, KEY_CACHE_MS } = await import('../src/platform/auth')
    await using t = await testApp()
    let now = Date.now()
    let lookups = 0
    const keys: KeyStore = Object.assign(Object.create(t.keys) as KeyStore, { byId: (id: string) => (lookups++, t.keys.byId(id)) })
    const app = createApp({ config: t.config, database: t.database, keys, log: createLogger('silent'), credentials: new Credentials(keys, { now: () => now }) })
    const request = inProcess(app)
    const raw = `tm_Later123_${'l'.repeat(40)}`
    for (let i = 0; i < 5; i++) expect((await request('/v1/tasks', { key: raw })).status).toBe(401)
    expect(lookups).toBe(1)
    await t.keys.insert({ id: 'Later123', owner: 'lee', hash: hashKey(raw), scopes: 'tasks:read', createdAt: Date.now(), revokedAt: null })
    now += KEY_CACHE_MS - 1
    expect((await request('/v1/tasks', { key: raw })).status).toBe(401)
    now += 1
    expect((await request('/v1/tasks', { key: raw })).status).toBe(200)
    expect(lookups).toBe(2)
  })

  test('refused keys are remembered up to a bound, the oldest forgotten first', async () => {
    const { Credentials } = await import('../src/platform/auth')
    await using t = await testApp()
    let lookups = 0
    const keys: KeyStore = Object.assign(Object.create(t.keys) as KeyStore, { byId: (id: string) => (lookups++, t.keys.byId(id)) })
    const credentials = new Credentials(keys, { now: () => 0 })
    const fake = (i: number) => `tm_${String(i).padStart(8, 'F')}_${'s'.repeat(40)}`
    const verify = (raw: string) => credentials.principalOf(new Request('http://localhost/', { headers: { 'x-api-key': raw } }))
    for (let i = 0; i <= 10_000; i++) await verify(fake(i))
    expect(lookups).toBe(10_001)
    await verify(fake(10_000))
    expect(lookups).toBe(10_001)
    await verify(fake(0))
    expect(lookups).toBe(10_002)
  })
})
