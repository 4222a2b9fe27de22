// The keys API (/v1/keys, the contract's "Identity"): any credential mints narrower keys for itself,
// lists and revokes them; an expired or revoked key is refused, on every instance within 2 s,
// and so are the sockets and tickets it opened. Runs on SQLite and, in the PostgreSQL pass, there.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { openDatabase } from '../src/db'
import { DEFAULT_SCOPES, hashKey, type Scope } from '../src/platform/keys'
import { keyStore } from '../src/platform/keys/store'
import { MAX_EXPIRES_IN } from '../src/keys/model'
import { eventually } from './eventually'
import { needs, problemOf, tempDir, testApp, testDatabase, uniqueOwner, type TestApp } from './helpers'
import { keySocket, TestSocket, ticketFor, upgradeRequest, wsUrl } from './sensors.helpers'
import { cliKey, startServer } from './server'

interface Created {
  id: string
  key: string
  owner: string
  scopes: string[]
  label: string | null
  created_at: string
  expires_at: string | null
}

/** A test app that can also listen, for sockets. */
async function keysApp(): Promise<TestApp & { listen(): string }> {
  const t = await testApp()
  let url: string | null = null
  const dispose = t[Symbol.asyncDispose].bind(t)
  return Object.assign(t, {
    listen() {
      if (!url) {
        t.app.listen({ port: 0, hostname: '127.0.0.1' })
        url = `http://127.0.0.1:${t.app.server!.port}`
      }
      return url
    },
    async [Symbol.asyncDispose]() {
      if (url) await t.app.stop(true)
      await dispose()
    },
  })
}

async function create(t: { request: TestApp['request'] }, key: string, json: unknown = {}): Promise<Created> {
  const response = await t.request('/v1/keys', { method: 'POST', key, json })
  expect(response.status).toBe(201)
  return (await response.json()) as Created
}

async function refused(t: TestApp, key: string, json: unknown, status: number) {
  const response = await t.request('/v1/keys', { method: 'POST', key, json })
  expect(response.status).toBe(status)
  return problemOf(response)
}

const tasksStatus = async (t: { request: TestApp['request'] }, key: string) => (await t.request('/v1/tasks', { key })).status
const isoOrNull = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

describe('POST /v1/keys', () => {
  test('any credential creates a key for itself: 201 with the key shown once, scopes defaulting to its own', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    // A key with no keys-related scope at all may still manage its own keys.
    const caller = await t.key(owner, ['predict', 'tasks:read'])
    const before = Date.now()
    const created = await create(t, caller)
    expect(created).toEqual({
      id: expect.stringMatching(/^[A-Za-z0-9]{8}$/),
      key: expect.stringMatching(/^tm_[A-Za-z0-9]{8}_[A-Za-z0-9]{32,}$/),
      owner,
      scopes: ['predict', 'tasks:read'],
      label: null,
      created_at: isoOrNull,
      expires_at: null,
    })
    expect(created.key.split('_')[1]).toBe(created.id)
    expect(Date.parse(created.created_at)).toBeGreaterThanOrEqual(before - 1)
    expect(await tasksStatus(t, created.key)).toBe(200)
    // Only the hash is stored: no listing shows the secret again.
    const listed = await (await t.request('/v1/keys', { key: caller })).text()
    expect(listed).toContain(created.id)
    expect(listed).not.toContain(created.key.split('_')[2]!)
    expect(listed).not.toContain('"key"')
  })

  test('a key it creates reaches the same owner\'s tasks', async () => {
    await using t = await testApp()
    const caller = await t.key()
    const made = await t.request('/v1/tasks', { method: 'POST', key: caller, json: { title: 'shared' } })
    expect(made.status).toBe(201)
    const child = await create(t, caller, { scopes: ['tasks:read'], label: 'reader' })
    expect(child).toMatchObject({ scopes: ['tasks:read'], label: 'reader' })
    const listed = (await (await t.request('/v1/tasks', { key: child.key })).json()) as { items: Array<{ title: string }> }
    expect(listed.items.map((task) => task.title)).toEqual(['shared'])
    expect((await t.request('/v1/tasks', { method: 'POST', key: child.key, json: { title: 'no' } })).status).toBe(403)
  })

  test('scopes must be a subset of the caller\'s own: 403 otherwise', async () => {
    await using t = await testApp()
    const caller = await t.key(uniqueOwner(), ['tasks:read', 'sensors:read'])
    expect(await create(t, caller, { scopes: ['sensors:read'] })).toMatchObject({ scopes: ['sensors:read'] })
    expect((await refused(t, caller, { scopes: ['tasks:read', 'tasks:write'] }, 403)).detail).toContain('tasks:write')
    expect((await refused(t, caller, { scopes: ['admin'] }, 403)).detail).toContain('admin')
  })

  test('admin holds every scope, so it may give any, admin included', async () => {
    await using t = await testApp()
    const admin = await t.key(uniqueOwner(), ['admin'])
    expect((await create(t, admin)).scopes).toEqual(['admin'])
    const scopes: Scope[] = ['tasks:write', 'predict', 'admin']
    expect((await create(t, admin, { scopes })).scopes).toEqual(scopes)
  })

  test('only admin may name another owner: 403 otherwise; naming oneself is fine', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    const caller = await t.key(owner)
    expect((await refused(t, caller, { owner: 'someone-else' }, 403)).detail).toContain('admin')
    expect((await create(t, caller, { owner })).owner).toBe(owner)
    const admin = await t.key(uniqueOwner(), ['admin'])
    const theirs = await create(t, admin, { owner: 'auth0|carol', scopes: ['tasks:read'] })
    expect(theirs).toMatchObject({ owner: 'auth0|carol', scopes: ['tasks:read'] })
    // The key is carol's: her keys list shows it, the admin's own does not.
    const carols = (await (await t.request('/v1/keys', { key: theirs.key })).json()) as { items: Array<{ id: string; owner: string }> }
    expect(carols.items).toEqual([expect.objectContaining({ id: theirs.id, owner: 'auth0|carol' })])
  })

  test('expires_in sets expires_at', async () => {
    await using t = await testApp()
    const caller = await t.key()
    const before = Date.now()
    const created = await create(t, caller, { expires_in: 3600 })
    const expiresAt = Date.parse(created.expires_at!)
    expect(expiresAt - Date.parse(created.created_at)).toBeGreaterThanOrEqual(3600_000 - 5)
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3600_000)
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000)
    expect((await create(t, caller, { expires_in: MAX_EXPIRES_IN })).expires_at).not.toBeNull()
  })

  test('a key that expires cannot mint one that outlives it: by default the new key expires with it', async () => {
    await using t = await testApp()
    const parent = await create(t, await t.key(), { expires_in: 3600 })
    expect((await create(t, parent.key)).expires_at).toBe(parent.expires_at)
    const sooner = await create(t, parent.key, { expires_in: 60 })
    expect(Date.parse(sooner.expires_at!)).toBeLessThan(Date.parse(parent.expires_at!))
    expect((await refused(t, parent.key, { expires_in: 7200 }, 403)).detail).toContain('outlive')
  })

  test('bad input is a 422 naming the field; nothing is created', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    const caller = await t.key(owner)
    const cases: Array<[unknown, string]> = [
      [{ expires_in: 0 }, 'body.expires_in'],
      [{ expires_in: -5 }, 'body.expires_in'],
      [{ expires_in: 1.5 }, 'body.expires_in'],
      [{ expires_in: '60' }, 'body.expires_in'],
      [{ expires_in: MAX_EXPIRES_IN + 1 }, 'body.expires_in'],
      [{ label: 'x'.repeat(201) }, 'body.label'],
      [{ label: 'a\u0000b' }, 'body.label'],
      [{ label: 'lone \ud800' }, 'body.label'],
      [{ label: 7 }, 'body.label'],
      [{ scopes: [] }, 'body.scopes'],
      [{ scopes: ['root'] }, 'body.scopes'],
      [{ scopes: 'tasks:read' }, 'body.scopes'],
      [{ owner: '' }, 'body.owner'],
      [{ owner: 'a\nb' }, 'body.owner'],
      [{ owner: 'a\u0085b' }, 'body.owner'],
      [{ owner: 'x'.repeat(256) }, 'body.owner'],
      [{ owner: 'lone \ud800' }, 'body.owner'],
      [{ id: 'AAAAAAAA' }, 'body.id'],
      [{ key: 'tm_x' }, 'body.key'],
      [{ created_at: '2020-01-01T00:00:00Z' }, 'body.created_at'],
    ]
    for (const [json, field] of cases) {
      const problem = await refused(t, caller, json, 422)
      expect(problem.errors?.some((e) => e.field === field || e.field.startsWith(`${field}.`)), JSON.stringify(json)).toBe(true)
    }
    const send = (body: string, type = 'application/json') => t.request('/v1/keys', { method: 'POST', key: caller, body, headers: { 'content-type': type } })
    expect((await send('{}', 'text/plain')).status).toBe(415)
    expect((await send('{"label":')).status).toBe(400)
    expect((await send(JSON.stringify({ label: 'x'.repeat(20_000) }))).status).toBe(413)
    expect(await create(t, caller, { label: 'x'.repeat(200) })).toMatchObject({ label: 'x'.repeat(200) })
    expect((await t.keys.byOwner(owner)).length).toBe(2)
  })

  test('without a credential: 401 with WWW-Authenticate, before the body is looked at', async () => {
    await using t = await testApp()
    for (const [path, method] of [['/v1/keys', 'POST'], ['/v1/keys', 'GET'], ['/v1/keys/AAAAAAAA', 'DELETE'], ['/v1/keys/bad', 'DELETE']] as const) {
      const response = await t.request(path, { method, ...(method === 'POST' ? { body: '{"expires_in":0', headers: { 'content-type': 'text/plain' } } : {}) })
      expect(response.status, `${method} ${path}`).toBe(401)
      expect(response.headers.get('www-authenticate')).toStartWith('Bearer')
      await problemOf(response)
    }
    const forged = await t.request('/v1/keys', { method: 'POST', key: `tm_AAAAAAAA_${'x'.repeat(40)}`, json: {} })
    expect(forged.status).toBe(401)
  })
})

describe('the keys API\'s rate limit', () => {
  test('is its own group, RATE_LIMIT_KEYS: minting keys cannot drain the tasks bucket', async () => {
    await using t = await testApp({ RATE_LIMIT_KEYS: '0.001/2' })
    const caller = await t.key()
    for (let i = 0; i < 2; i++) expect((await t.request('/v1/keys', { key: caller })).status).toBe(200)
    const limited = await t.request('/v1/keys', { method: 'POST', key: caller, json: {} })
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(await tasksStatus(t, caller)).toBe(200)
  })
})

describe('GET /v1/keys', () => {
  test('the caller\'s keys, newest first, without secrets, revoked and expired ones marked', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    const caller = await t.key(owner)
    const a = await create(t, caller, { label: 'a', scopes: ['tasks:read'] })
    const b = await create(t, caller, { label: 'b', expires_in: 60 })
    const c = await create(t, caller, { label: 'c' })
    expect((await t.request(`/v1/keys/${c.id}`, { method: 'DELETE', key: caller })).status).toBe(204)
    await t.key(uniqueOwner()) // someone else's
    const response = await t.request('/v1/keys', { key: caller })
    expect(response.status).toBe(200)
    const { items } = (await response.json()) as { items: Array<Record<string, unknown>> }
    const callerId = caller.split('_')[1]!
    expect(items.map((item) => item.id)).toEqual([c.id, b.id, a.id, callerId])
    expect(items[0]).toEqual({ id: c.id, owner, scopes: DEFAULT_SCOPES, label: 'c', created_at: c.created_at, expires_at: null, revoked_at: isoOrNull })
    expect(items[1]).toEqual({ id: b.id, owner, scopes: DEFAULT_SCOPES, label: 'b', created_at: b.created_at, expires_at: b.expires_at, revoked_at: null })
    expect(items[2]).toEqual({ id: a.id, owner, scopes: ['tasks:read'], label: 'a', created_at: a.created_at, expires_at: null, revoked_at: null })
    for (const item of items) expect(Object.keys(item).sort()).toEqual(['created_at', 'expires_at', 'id', 'label', 'owner', 'revoked_at', 'scopes'])
    const head = await t.request('/v1/keys', { method: 'HEAD', key: caller })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
  })

  test('admin may pass ?owner=; anyone else naming another owner is 403', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    const theirs = await t.key(owner)
    const admin = await t.key(uniqueOwner(), ['admin'])
    const seen = (await (await t.request(`/v1/keys?owner=${owner}`, { key: admin })).json()) as { items: Array<{ id: string }> }
    expect(seen.items.map((item) => item.id)).toEqual([theirs.split('_')[1]!])
    const nosy = await t.request(`/v1/keys?owner=${uniqueOwner()}`, { key: await t.key() })
    expect(nosy.status).toBe(403)
    await problemOf(nosy)
    expect((await t.request(`/v1/keys?owner=${owner}`, { key: theirs })).status).toBe(200)
    expect((await t.request('/v1/keys?owner=', { key: admin })).status).toBe(422)
    expect((await t.request('/v1/keys?other=1', { key: admin })).status).toBe(422)
  })
})

describe('DELETE /v1/keys/{id}', () => {
  test('revokes one of the caller\'s keys: 204, then that key is 401; again is 404', async () => {
    await using t = await testApp()
    const caller = await t.key()
    const child = await create(t, caller)
    expect(await tasksStatus(t, child.key)).toBe(200)
    const response = await t.request(`/v1/keys/${child.id}`, { method: 'DELETE', key: caller })
    expect(response.status).toBe(204)
    expect(await response.text()).toBe('')
    // The revoking instance's cache may trust the key up to 2 s (KEY_CACHE_MS): wait on the condition.
    await eventually(async () => (await tasksStatus(t, child.key)) === 401, { what: 'the revoked key is refused', timeoutMs: 2500, intervalMs: 50 })
    // Already revoked: there is no live key of that id to revoke.
    expect((await t.request(`/v1/keys/${child.id}`, { method: 'DELETE', key: caller })).status).toBe(404)
    // A key may revoke itself.
    expect((await t.request(`/v1/keys/${caller.split('_')[1]}`, { method: 'DELETE', key: caller })).status).toBe(204)
  })

  test('another owner\'s key and an unknown one are 404, and the other key still works; a malformed id is 422', async () => {
    await using t = await testApp()
    const mine = await t.key()
    const theirs = await t.key()
    const theirId = theirs.split('_')[1]!
    const other = await t.request(`/v1/keys/${theirId}`, { method: 'DELETE', key: mine })
    expect(other.status).toBe(404)
    await problemOf(other)
    expect((await t.request('/v1/keys/Unknown1', { method: 'DELETE', key: mine })).status).toBe(404)
    expect((await t.keys.byId(theirId))?.revokedAt).toBeNull()
    expect(await tasksStatus(t, theirs)).toBe(200)
    for (const bad of ['short', 'tm_AAAAAAAA', 'AAAAAAAAA', 'AAAA-AAA']) {
      expect((await t.request(`/v1/keys/${bad}`, { method: 'DELETE', key: mine })).status, bad).toBe(422)
    }
  })

  test('a narrower key cannot revoke a wider key of its owner (404, the key untouched); it revokes one no wider than itself', async () => {
    await using t = await testApp()
    const owner = uniqueOwner()
    const wide = await t.key(owner, ['tasks:read', 'tasks:write', 'admin'])
    const reader = await create(t, wide, { scopes: ['tasks:read'] })
    const writer = await create(t, wide, { scopes: ['tasks:read', 'tasks:write'] })
    const wideId = wide.split('_')[1]!
    for (const id of [wideId, writer.id]) {
      const refusedDelete = await t.request(`/v1/keys/${id}`, { method: 'DELETE', key: reader.key })
      expect(refusedDelete.status, id).toBe(404)
      expect((await problemOf(refusedDelete)).detail).toBe(`no unrevoked key ${id} of yours`)
      expect((await t.keys.byId(id))?.revokedAt).toBeNull()
    }
    // Listing still shows all of the owner's keys (metadata only).
    const listed = await t.request('/v1/keys', { key: reader.key })
    expect(((await listed.json()) as { items: Array<{ id: string }> }).items.map((key) => key.id).sort()).toEqual([wideId, reader.id, writer.id].sort())
    const narrower = await create(t, writer.key, { scopes: ['tasks:read'] })
    expect((await t.request(`/v1/keys/${narrower.id}`, { method: 'DELETE', key: writer.key })).status).toBe(204)
    expect((await t.request(`/v1/keys/${reader.id}`, { method: 'DELETE', key: writer.key })).status).toBe(204)
  })

  test('admin revokes anyone\'s key', async () => {
    await using t = await testApp()
    const theirs = await t.key()
    const admin = await t.key(uniqueOwner(), ['admin'])
    expect((await t.request(`/v1/keys/${theirs.split('_')[1]}`, { method: 'DELETE', key: admin })).status).toBe(204)
    expect((await t.keys.byId(theirs.split('_')[1]!))?.revokedAt).toEqual(expect.any(Number))
  })
})

describe('an expired key', () => {
  test('is 401 like a revoked one', async () => {
    await using t = await testApp()
    const raw = `tm_Expired1_${'e'.repeat(40)}`
    await t.keys.insert({ id: 'Expired1', owner: uniqueOwner(), hash: hashKey(raw), scopes: 'tasks:read', label: null, createdAt: Date.now() - 10_000, expiresAt: Date.now() - 1, revokedAt: null })
    const expired = await t.request('/v1/tasks', { key: raw })
    const revokedKey = await t.key()
    await t.keys.revoke(revokedKey.split('_')[1]!, Date.now())
    const revoked = await t.request('/v1/tasks', { key: revokedKey })
    expect(expired.status).toBe(401)
    expect(expired.headers.get('www-authenticate')).toBe(revoked.headers.get('www-authenticate'))
    expect(await problemOf(expired)).toEqual(await problemOf(revoked))
    // It cannot manage keys either.
    expect((await t.request('/v1/keys', { method: 'POST', key: raw, json: {} })).status).toBe(401)
  })

  test('is refused from its expires_at on, though it was verified (and cached) a moment before', async () => {
    await using t = await testApp()
    const short = await create(t, await t.key(), { expires_in: 1 })
    expect(await tasksStatus(t, short.key)).toBe(200)
    const expiresAt = Date.parse(short.expires_at!)
    await eventually(() => Date.now() >= expiresAt, { what: 'the key\'s expires_at has passed', intervalMs: 1 })
    // Without the cache honouring expires_at, the verified key would be trusted 2 s past its lookup.
    expect(await tasksStatus(t, short.key)).toBe(401)
  })
})

describe('sockets and tickets of a key', () => {
  test('a socket opened with a key closes with 1008 within 2 s of the key expiring', async () => {
    await using t = await keysApp()
    const url = t.listen()
    const short = await create(t, await t.key(), { expires_in: 1 })
    const socket = await keySocket(url, short.key)
    await socket.sync()
    const closed = await socket.closed
    expect(closed.code).toBe(1008)
    expect(Date.now() - Date.parse(short.expires_at!)).toBeLessThan(2000)
  })

  test('a socket closes with 1008 once its key is revoked through the API', async () => {
    await using t = await keysApp()
    const url = t.listen()
    const caller = await t.key()
    const child = await create(t, caller)
    const socket = await keySocket(url, child.key)
    const bystander = await keySocket(url, caller)
    await socket.sync()
    const started = performance.now()
    expect((await t.request(`/v1/keys/${child.id}`, { method: 'DELETE', key: caller })).status).toBe(204)
    expect((await socket.closed).code).toBe(1008)
    expect(performance.now() - started).toBeLessThan(2000)
    await bystander.sync()
    bystander.close()
  })

  test('a ticket minted by a key that is then revoked no longer opens a socket', async () => {
    await using t = await keysApp()
    const url = t.listen()
    const caller = await t.key()
    const child = await create(t, caller)
    const ticket = await ticketFor(t, child.key)
    expect((await t.request(`/v1/keys/${child.id}`, { method: 'DELETE', key: caller })).status).toBe(204)
    const refusedUpgrade = await upgradeRequest(url, `?ticket=${ticket}`)
    expect(refusedUpgrade.status).toBe(401)
    await problemOf(refusedUpgrade)
    // A ticket of a live key still opens one.
    const socket = await TestSocket.open(wsUrl(url, `?ticket=${await ticketFor(t, caller)}`))
    await socket.sync()
    socket.close()
  })

  test('a ticket minted by a key that then expires no longer opens a socket', async () => {
    await using t = await keysApp()
    const url = t.listen()
    const short = await create(t, await t.key(), { expires_in: 1 })
    const ticket = await ticketFor(t, short.key)
    const expiresAt = Date.parse(short.expires_at!)
    await eventually(() => Date.now() >= expiresAt, { what: 'the key\'s expires_at has passed', intervalMs: 1 })
    expect((await upgradeRequest(url, `?ticket=${ticket}`)).status).toBe(401)
  })
})

describe('two instances on one PostgreSQL database', () => {
  test.skipIf(!needs('postgres'))('a key revoked through the API on one is refused on the other within 2 s', async () => {
    const database = await testDatabase(tempDir(), 'postgres')
    try {
      const owner = uniqueOwner()
      const caller = await cliKey(database.url, owner)
      const env = { DATABASE_URL: database.url, MODELS_DIR: join(tempDir(), 'models') }
      await using a = await startServer(env)
      await using b = await startServer(env)
      const on = (server: { url: string }) => ({
        request: (path: string, init: RequestInit & { key?: string; json?: unknown } = {}) => fetch(`${server.url}${path}`, {
          ...init,
          headers: { ...(init.key ? { 'x-api-key': init.key } : {}), ...(init.json === undefined ? {} : { 'content-type': 'application/json' }) },
          body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
        }),
      })
      const child = await create(on(a), caller, { label: 'roaming' })
      // B verifies the key, and so trusts it for up to KEY_CACHE_MS from here on.
      expect(await tasksStatus(on(b), child.key)).toBe(200)
      const socket = await keySocket(b.url, child.key)
      await socket.sync()
      const started = performance.now()
      expect((await on(a).request(`/v1/keys/${child.id}`, { method: 'DELETE', key: caller })).status).toBe(204)
      // Nothing is sent from A to B: B's verified-key cache lives KEY_CACHE_MS (2 s) and its sockets
      // ask the shared database every second, so the revocation row A wrote reaches B by that TTL.
      await eventually(async () => (await tasksStatus(on(b), child.key)) === 401, { what: 'B refuses the revoked key', timeoutMs: 3000, intervalMs: 50 })
      expect((await socket.closed).code).toBe(1008)
      // 2 s of cache, plus a request's round trip.
      expect(performance.now() - started).toBeLessThan(2300)
      expect(await tasksStatus(on(b), caller)).toBe(200)
      // The revocation is in the database both share.
      const shared = await openDatabase(database.url)
      expect((await keyStore(shared).byId(child.id))?.revokedAt).toEqual(expect.any(Number))
      await shared.close()
    } finally {
      await database.drop()
    }
  })
})
