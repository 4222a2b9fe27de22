// The rate limiter under abuse: made-up keys, clients behind proxies, groups with different limits.
import { describe, expect, test } from 'bun:test'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import type { KeyStore } from '../src/platform/keys'
import { createLogger } from '../src/platform/logger'
import { TrustedProxies } from '../src/platform/proxies'
import { MemoryLimiter } from '../src/platform/ratelimit'
import { MAX_LOOKUPS_IN_FLIGHT } from '../src/platform/gateway'
import { testApp } from './helpers'

/** The test's real key store, with its lookups counted. */
function counted(store: KeyStore): KeyStore & { lookups: number } {
  const observed = {
    lookups: 0,
    get synchronous() {
      return store.synchronous
    },
    insert: store.insert.bind(store),
    byOwner: store.byOwner.bind(store),
    revoke: store.revoke.bind(store),
    byId(id: string) {
      observed.lookups++
      return store.byId(id)
    },
  }
  return observed
}

/** The same store answering each lookup 20 ms late, as a remote database would: lookups overlap. */
function remote(store: KeyStore & { lookups: number }): KeyStore & { lookups: number } {
  return {
    synchronous: false,
    get lookups() {
      return store.lookups
    },
    insert: store.insert.bind(store),
    byOwner: store.byOwner.bind(store),
    revoke: store.revoke.bind(store),
    async byId(id: string) {
      await Bun.sleep(20)
      return store.byId(id)
    },
  }
}

const madeUp = () => `tm_${crypto.randomUUID().replaceAll('-', '').slice(0, 8)}_${'s'.repeat(40)}`

/** An app with `env` on the test's database, listening on 127.0.0.1 so requests have a real peer address. */
async function listening(env: Record<string, string>, now: () => number, wrap: (store: KeyStore & { lookups: number }) => KeyStore & { lookups: number } = (store) => store) {
  const t = await testApp()
  const observed = counted(t.keys)
  const keys = wrap(observed)
  const config = loadConfig({ DATABASE_URL: t.config.databaseUrl, SIMULATOR: 'off', ...env })
  const app = createApp({ config, database: t.database, keys, log: createLogger('silent'), limiter: new MemoryLimiter(now) })
  app.listen({ port: 0, hostname: '127.0.0.1' })
  const url = `http://127.0.0.1:${app.server!.port}`
  const get = (headers: Record<string, string> = {}, path = '/v1/tasks') => fetch(`${url}${path}`, { headers }).then((r) => r.status)
  return {
    t,
    keys: observed,
    get,
    async [Symbol.asyncDispose]() {
      await app.stop()
      await t[Symbol.asyncDispose]()
    },
  }
}

describe('made-up keys', () => {
  test('a flood of fresh well-formed keys reaches the key store no more than the client limit allows', async () => {
    await using server = await listening({ RATE_LIMIT: '5/5' }, () => 1_000)
    const statuses: number[] = []
    for (let i = 0; i < 40; i++) statuses.push(await server.get({ 'x-api-key': madeUp() }))
    expect(server.keys.lookups).toBe(5)
    expect(statuses).toEqual([...Array(5).fill(401), ...Array(35).fill(429)])
  })

  test('sent all at once to a remote store, reach it no more than the client limit and the lookups in flight allow', async () => {
    await using server = await listening({ RATE_LIMIT: '5/5' }, () => 1_000, remote)
    const statuses = await Promise.all(Array.from({ length: 40 }, () => server.get({ 'x-api-key': madeUp() })))
    expect(server.keys.lookups).toBeLessThanOrEqual(5 + MAX_LOOKUPS_IN_FLIGHT)
    expect(statuses.filter((status) => status === 401).length).toBe(server.keys.lookups)
    expect(statuses.filter((status) => status === 429).length).toBe(40 - server.keys.lookups)
  })

  test('do not lock out a real key used lately from the same address, once its cache entry is gone', async () => {
    let now = 1_000
    await using server = await listening({ RATE_LIMIT: '5/5' }, () => now)
    const key = await server.t.key()
    expect(await server.get({ 'x-api-key': key })).toBe(200)
    now += 3_000
    for (let i = 0; i < 20; i++) await server.get({ 'x-api-key': madeUp() })
    expect(await server.get({ 'x-api-key': madeUp() })).toBe(429)
    expect(await server.get({ 'x-api-key': key })).toBe(200)
  })

  test('a key of a real id with a made-up secret cannot spend that key\'s budget', async () => {
    await using server = await listening({ RATE_LIMIT: '3/3' }, () => 1_000)
    const key = await server.t.key()
    const forged = `${key.slice(0, 12)}${'f'.repeat(40)}`
    expect(await server.get({ 'x-api-key': key })).toBe(200)
    expect([await server.get({ 'x-api-key': forged }), await server.get({ 'x-api-key': forged }), await server.get({ 'x-api-key': forged })]).toEqual([401, 401, 401])
    expect(await server.get({ 'x-api-key': forged })).toBe(429)
    expect([await server.get({ 'x-api-key': key }), await server.get({ 'x-api-key': key }), await server.get({ 'x-api-key': key })]).toEqual([200, 200, 429])
  })

  test('a refused key is remembered: repeating it costs one lookup', async () => {
    await using server = await listening({ RATE_LIMIT: 'off' }, () => 1_000)
    const fake = madeUp()
    for (let i = 0; i < 20; i++) expect(await server.get({ 'x-api-key': fake })).toBe(401)
    expect(server.keys.lookups).toBe(1)
  })
})

describe('TRUSTED_PROXIES', () => {
  const anonymous = (forwardedFor: string) => ({ 'x-forwarded-for': forwardedFor })

  test('unset: X-Forwarded-For is ignored and every client behind the peer shares its bucket', async () => {
    await using server = await listening({ RATE_LIMIT: '1/1' }, () => 1_000)
    expect(await server.get(anonymous('198.51.100.1'))).toBe(401)
    expect(await server.get(anonymous('198.51.100.2'))).toBe(429)
  })

  test('a trusted peer: the right-most untrusted X-Forwarded-For address is the client', async () => {
    await using server = await listening({ RATE_LIMIT: '1/1', TRUSTED_PROXIES: '127.0.0.1/32' }, () => 1_000)
    expect(await server.get(anonymous('198.51.100.1'))).toBe(401)
    expect(await server.get(anonymous('198.51.100.2'))).toBe(401)
    expect(await server.get(anonymous('198.51.100.1'))).toBe(429)
    // What the client itself put left of its address, or a trusted hop right of it, changes nothing.
    expect(await server.get(anonymous('203.0.113.9, 198.51.100.2'))).toBe(429)
    expect(await server.get(anonymous('198.51.100.2, 127.0.0.1'))).toBe(429)
    // Without the header the proxy itself is the client.
    expect(await server.get()).toBe(401)
  })

  test('a client\'s made-up keys do not hold back another client behind the same proxy', async () => {
    await using server = await listening({ RATE_LIMIT: '2/2', TRUSTED_PROXIES: '127.0.0.1' }, () => 1_000)
    const key = await server.t.key()
    for (let i = 0; i < 5; i++) await server.get({ ...anonymous('198.51.100.66'), 'x-api-key': madeUp() })
    expect(server.keys.lookups).toBe(2)
    expect(await server.get({ ...anonymous('198.51.100.7'), 'x-api-key': key })).toBe(200)
  })

  test('IPv6 and IPv4-mapped peers, CIDRs and single addresses', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '::1', 'fd00::/8'])
    expect(proxies.clientOf('::1', '2001:db8::1, fd00::5')).toBe('2001:db8::1')
    expect(proxies.clientOf('::ffff:10.1.2.3', '192.0.2.1')).toBe('192.0.2.1')
    expect(proxies.clientOf('192.0.2.50', '192.0.2.1')).toBe('192.0.2.50')
    expect(proxies.clientOf('10.0.0.1', 'fd00::1, 10.0.0.2')).toBe('fd00::1')
    expect(proxies.clientOf('10.0.0.1', 'not-an-address, 10.0.0.2')).toBe('10.0.0.2')
    expect(new TrustedProxies([]).clientOf('10.0.0.1', '192.0.2.1')).toBe('10.0.0.1')
  })
})

describe('the in-memory limiter', () => {
  test('its sweep expires each bucket by that bucket\'s own limit', () => {
    let now = 0
    const limiter = new MemoryLimiter(() => now)
    const slow = { rate: 0.1, burst: 2 }
    const fast = { rate: 10, burst: 10 }
    expect(limiter.take('slow', slow).allowed).toBe(true)
    expect(limiter.take('slow', slow).allowed).toBe(true)
    expect(limiter.take('slow', slow).allowed).toBe(false)
    // 11 s later the fast group (full again after 1 s) sweeps; the slow bucket has refilled 1.1 tokens of 2.
    now = 11_000
    limiter.take('fast', fast)
    expect(limiter.take('slow', slow)).toMatchObject({ allowed: true, remaining: 0 })
    expect(limiter.take('slow', slow).allowed).toBe(false)
  })
})
