// The sensor feed against abuse: topics exist only once published to (subscribing or reading
// creates none), are capped and forgotten when idle, the history budget counts bytes; one key's
// sockets are capped, share its rate-limit bucket, and close once it is revoked.
import { describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import { openDatabase } from '../src/db'
import { createKey, DEFAULT_SCOPES } from '../src/platform/keys'
import { keyStore } from '../src/platform/keys/store'
import { createLogger } from '../src/platform/logger'
import { MemoryLimiter } from '../src/platform/ratelimit'
import { sensorFeed } from '../src/sensors'
import { TOPIC_IDLE_MS } from '../src/sensors/history'
import { MAX_SOCKETS_PER_KEY } from '../src/sensors/socket'
import { eventually } from './eventually'
import { inProcess, needs, problemOf, tempDir, testDatabase, uniqueOwner } from './helpers'
import { keySocket, publish, readings, sensorApp, TestSocket, ticketFor, upgradeRequest, wsUrl, type SensorApp } from './sensors.helpers'
import { cliKey, startServer } from './server'

const T0 = Date.parse('2030-01-02T03:04:05.000Z')

async function sensorIds(t: SensorApp, key: string): Promise<string[]> {
  const response = await t.request('/v1/sensors', { key })
  expect(response.status).toBe(200)
  return ((await response.json()) as { items: Array<{ sensor_id: string }> }).items.map((s) => s.sensor_id)
}

const idOf = (raw: string) => raw.split('_')[1]!

describe('a topic exists once something was published to it', () => {
  test('subscribing to and reading many new topics neither creates them nor evicts the published ones', async () => {
    await using t = await sensorApp({ maxTopics: 3 })
    const key = await t.key()
    for (const id of ['a', 'b', 'c']) await publish(t, key, id, { id })
    const socket = await keySocket(t.listen(), key)
    for (let i = 0; i < 20; i++) {
      socket.send({ op: 'subscribe', topic: `sensors/ghost-${i}` })
      socket.send({ op: 'unsubscribe', topic: `sensors/ghost-${i}` })
      expect(await readings(t, key, `unread-${i}`)).toEqual({ epoch: null, items: [] })
    }
    await socket.take(20)
    await socket.sync()
    expect(await sensorIds(t, key)).toEqual(['a', 'b', 'c'])
    expect(t.feed.source.topics).toBe(3)
    expect(t.feed.source.evictions).toBe(0)
    for (const id of ['a', 'b', 'c']) expect((await readings(t, key, id)).items.map((r) => r.data)).toEqual([{ id }])
    expect(await readings(t, key, 'ghost-0')).toEqual({ epoch: null, items: [] })
    socket.close()
  })

  test('the first reading of a topic comes in the epoch its subscribers were told, and resumes from it', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const url = t.listen()
    const first = await keySocket(url, key)
    first.send({ op: 'subscribe', topic: 'sensors/fresh' })
    const [told] = await first.take(1)
    expect(told).toEqual({ op: 'subscribed', topic: 'sensors/fresh', epoch: expect.any(String), recovered: true })
    const epoch = told!.epoch as string
    // Another subscriber before any publish is told the same epoch, and resumes from 0 in it.
    const second = await keySocket(url, key)
    second.send({ op: 'subscribe', topic: 'sensors/fresh', since: 0, epoch })
    expect(await second.next()).toEqual({ op: 'subscribed', topic: 'sensors/fresh', epoch, recovered: true })
    await publish(t, key, 'fresh', { n: 1 })
    expect(await first.next()).toMatchObject({ topic: 'sensors/fresh', seq: 1, data: { n: 1 } })
    expect(await second.next()).toMatchObject({ topic: 'sensors/fresh', seq: 1, data: { n: 1 } })
    expect((await readings(t, key, 'fresh')).epoch).toBe(epoch)
    first.close()
    const back = await keySocket(url, key)
    back.send({ op: 'subscribe', topic: 'sensors/fresh', since: 0, epoch })
    expect(await back.take(2)).toEqual([
      { op: 'subscribed', topic: 'sensors/fresh', epoch, recovered: true },
      expect.objectContaining({ topic: 'sensors/fresh', seq: 1 }),
    ])
    second.close()
    back.close()
  })

  test('subscribers of a forgotten topic are told at once, in the epoch its next reading starts in', async () => {
    await using t = await sensorApp({ maxTopics: 2 })
    const key = await t.key()
    await publish(t, key, 'old')
    const socket = await keySocket(t.listen(), key)
    socket.send({ op: 'subscribe', topic: 'sensors/old' })
    const [{ epoch: before }] = (await socket.take(1)) as [{ epoch: string }]
    await publish(t, key, 'b')
    await publish(t, key, 'c')
    const restarted = await socket.next()
    expect(restarted).toEqual({ op: 'subscribed', topic: 'sensors/old', epoch: expect.any(String), recovered: false })
    expect(restarted.epoch).not.toBe(before)
    await publish(t, key, 'old')
    expect(await socket.next()).toMatchObject({ topic: 'sensors/old', seq: 1 })
    expect((await readings(t, key, 'old')).epoch).toBe(restarted.epoch as string)
    await socket.sync()
    expect(socket.pending()).toEqual([])
    socket.close()
  })

  test('a topic nobody published to for 24 h is forgotten', async () => {
    let now = T0
    const { hub, source } = sensorFeed({ now: () => now })
    hub.publish('sensors/idle', { v: 1 })
    now += 60_000
    hub.publish('sensors/busy', { v: 1 })
    now = T0 + TOPIC_IDLE_MS
    expect((await hub.list()).map((s) => s.sensor_id)).toEqual(['busy', 'idle'])
    now += 1
    expect((await hub.list()).map((s) => s.sensor_id)).toEqual(['busy'])
    expect(await hub.readings('sensors/idle', 0, 10)).toEqual({ epoch: null, items: [] })
    expect(source.topics).toBe(1)
    expect(hub.publish('sensors/idle', { v: 2 })).toEqual({ topic: 'sensors/idle', seq: 1 })
  })

  test('the history byte budget counts UTF-8 bytes', async () => {
    // Each frame is about 1 070 UTF-16 units but 2 070 bytes: eight fit in 10 000 units, four in 10 000 bytes.
    const { hub } = sensorFeed({ maxHistoryBytes: 10_000 })
    for (let i = 0; i < 8; i++) hub.publish('sensors/utf8', { text: 'é'.repeat(1000) })
    const kept = (await hub.readings('sensors/utf8', 0, 100)).items.map((r) => r.seq)
    expect(kept).toEqual([5, 6, 7, 8])
  })
})

describe('sensor ids named like Object.prototype members', () => {
  test('are topics like any other, over HTTP and the socket', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']
    const socket = await keySocket(t.listen(), key)
    for (const name of names) {
      expect(await readings(t, key, name)).toEqual({ epoch: null, items: [] })
      socket.send({ op: 'subscribe', topic: `sensors/${name}` })
    }
    expect((await socket.take(names.length)).map((m) => [m.op, m.recovered])).toEqual(names.map(() => ['subscribed', true]))
    const data = JSON.parse('{"__proto__":{"polluted":true},"constructor":1}')
    for (const name of names) expect(await publish(t, key, name, data)).toEqual({ topic: `sensors/${name}`, seq: 1 })
    const live = await socket.take(names.length)
    expect(live.map((m) => m.topic)).toEqual(names.map((name) => `sensors/${name}`))
    for (const message of live) expect(Object.entries(message.data as object)).toEqual([['__proto__', { polluted: true }], ['constructor', 1]])
    expect((await sensorIds(t, key)).sort()).toEqual([...names].sort())
    // Over the socket too, with a message that has a __proto__ member of its own.
    socket.send('{"op":"publish","topic":"sensors/__proto__","__proto__":{"op":"ping"},"data":{"__proto__":{"polluted":true},"constructor":1}}')
    const relayed = await socket.next()
    expect(relayed).toMatchObject({ topic: 'sensors/__proto__', seq: 2 })
    expect(Object.entries(relayed.data as object)).toEqual([['__proto__', { polluted: true }], ['constructor', 1]])
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
    socket.close()
  })
})

describe('sockets per API key', () => {
  test(`one key holds at most ${MAX_SOCKETS_PER_KEY} open sockets: the next upgrade, with the key or its ticket, is 429`, async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const open = await Promise.all(Array.from({ length: MAX_SOCKETS_PER_KEY }, () => keySocket(url, key)))
    const refused = await upgradeRequest(url, '', { 'x-api-key': key })
    expect(refused.status).toBe(429)
    expect((await problemOf(refused)).detail).toContain(`${MAX_SOCKETS_PER_KEY} sockets`)
    expect((await upgradeRequest(url, `?ticket=${await ticketFor(t, key)}`)).status).toBe(429)
    // Another key is not affected.
    const other = await keySocket(url, await t.key())
    expect(t.feed.hub.connections).toBe(MAX_SOCKETS_PER_KEY + 1)
    // Closing one frees its place.
    open[0]!.close()
    await eventually(() => t.feed.hub.connections === MAX_SOCKETS_PER_KEY, { what: 'the server saw the close' })
    const again = await keySocket(url, key)
    await again.sync()
    for (const socket of [...open.slice(1), other, again]) socket.close()
  })
})

describe.skipIf(!needs('redis'))('sockets per API key, with REDIS_URL', () => {
  test(`one key holds at most ${MAX_SOCKETS_PER_KEY} open sockets on all instances together, however many upgrade at once`, async () => {
    const database = await testDatabase(tempDir())
    const prefix = `test:${crypto.randomUUID().slice(0, 8)}:`
    const redis = new RedisClient('redis://127.0.0.1:6379')
    try {
      const key = await cliKey(database.url, 'many-sockets')
      const env = { DATABASE_URL: database.url, MODELS_DIR: join(tempDir(), 'models'), REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: prefix }
      await using a = await startServer(env)
      await using b = await startServer(env)
      const attempts = await Promise.allSettled(Array.from({ length: MAX_SOCKETS_PER_KEY + 10 }, (_, i) => keySocket(i % 2 ? a.url : b.url, key)))
      const open = attempts.flatMap((attempt) => (attempt.status === 'fulfilled' ? [attempt.value] : []))
      expect(open.length).toBe(MAX_SOCKETS_PER_KEY)
      for (const instance of [a, b]) expect((await upgradeRequest(instance.url, '', { 'x-api-key': key })).status).toBe(429)
      // Closing one on either instance frees its place on the other.
      open[0]!.close()
      await open[0]!.closed
      const again = await eventually(async () => keySocket(b.url, key).catch(() => null), { what: 'the freed place is taken on the other instance' })
      await again.sync()
      for (const socket of [...open.slice(1), again]) socket.close()
    } finally {
      const keys = (await redis.send('KEYS', [`${prefix}*`])) as string[]
      if (keys.length > 0) await redis.send('DEL', keys)
      redis.close()
      await database.drop()
    }
  })
})

describe('an upgrade that cannot complete', () => {
  const noHandshake = (base: string, query = '', headers: Record<string, string> = {}) =>
    fetch(`${base}/v1/sensors/ws${query}`, { headers: { upgrade: 'websocket', connection: 'Upgrade', ...headers } })

  test('is a 400 problem before anything is spent: its ticket still opens a socket, its key keeps its places', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const ticket = await ticketFor(t, key)
    const refused = await noHandshake(url, `?ticket=${ticket}`)
    expect(refused.status).toBe(400)
    expect((await problemOf(refused)).detail).toContain('Sec-WebSocket-Key')
    for (let i = 0; i < MAX_SOCKETS_PER_KEY + 5; i++) expect((await noHandshake(url, '', { 'x-api-key': key })).status).toBe(400)
    const byTicket = await TestSocket.open(wsUrl(url, `?ticket=${ticket}`))
    await byTicket.sync()
    const open = await Promise.all(Array.from({ length: MAX_SOCKETS_PER_KEY - 1 }, () => keySocket(url, key)))
    expect(t.feed.hub.connections).toBe(MAX_SOCKETS_PER_KEY)
    for (const socket of [byTicket, ...open]) socket.close()
  })

  test('from a foreign origin does not spend the ticket it carries', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const ticket = await ticketFor(t, key)
    expect((await upgradeRequest(url, `?ticket=${ticket}`, { origin: 'http://evil.example' })).status).toBe(403)
    const socket = await TestSocket.open(wsUrl(url, `?ticket=${ticket}`))
    await socket.sync()
    socket.close()
  })
})

describe('socket publishes and the rate limit', () => {
  /** An app whose gateway and sockets share one limiter on a frozen clock: no token comes back during a test. */
  async function limitedApp(env: Record<string, string>) {
    const dir = tempDir()
    const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'app.sqlite')}`, SIMULATOR: 'off', MODELS_DIR: join(dir, 'models'), ...env })
    const database = await openDatabase(config.databaseUrl)
    const keys = keyStore(database)
    const limiter = new MemoryLimiter(() => T0)
    const feed = sensorFeed({ config, limiter, socketLimits: { rate: Infinity, burst: Infinity } })
    const app = createApp({ config, database, keys, limiter, log: createLogger('silent'), sensors: feed })
    app.listen({ port: 0, hostname: '127.0.0.1' })
    return {
      url: `http://127.0.0.1:${app.server!.port}`,
      request: inProcess(app),
      key: async () => (await createKey(keys, uniqueOwner(), DEFAULT_SCOPES)).raw,
      async [Symbol.asyncDispose]() {
        await app.stop(true)
        await database.close()
      },
    }
  }

  const post = (t: Awaited<ReturnType<typeof limitedApp>>, key: string) =>
    t.request('/v1/sensors/s/readings', { method: 'POST', key, json: { v: 1 } })

  /** Publishes on the socket until one is refused; the number accepted before it. */
  async function publishUntilRefused(socket: TestSocket, most: number): Promise<number> {
    for (let i = 0; i <= most; i++) {
      socket.send({ op: 'publish', topic: 'sensors/s', data: { i } })
      await socket.sync()
      const refusal = socket.pending().find((m) => m.op === 'error')
      if (refusal) {
        expect(refusal).toEqual({ op: 'error', code: 'rate_limited', message: expect.stringContaining('HTTP and sockets together') })
        return i
      }
    }
    throw new Error(`${most + 1} socket publishes were all accepted`)
  }

  test('draw from the key\'s sensors bucket, which HTTP publishes share (RATE_LIMIT_SENSORS)', async () => {
    await using t = await limitedApp({ RATE_LIMIT: 'off', RATE_LIMIT_SENSORS: '1/10' })
    const key = await t.key()
    const socket = await keySocket(t.url, key)
    for (let i = 0; i < 3; i++) expect((await post(t, key)).status).toBe(202)
    // The upgrade and three requests took four of ten tokens; pings take none.
    expect(await publishUntilRefused(socket, 10)).toBe(6)
    expect((await post(t, key)).status).toBe(429)
    socket.close()
  })

  test('a key whose HTTP publishes emptied the bucket cannot publish on a socket (RATE_LIMIT)', async () => {
    await using t = await limitedApp({ RATE_LIMIT: '1/4' })
    const key = await t.key()
    const socket = await keySocket(t.url, key)
    let accepted = 0
    while ((await post(t, key)).status === 202) accepted++
    expect(accepted).toBe(3)
    expect(await publishUntilRefused(socket, 0)).toBe(0)
    // Other keys have their own buckets.
    expect(await publishUntilRefused(await keySocket(t.url, await t.key()), 5)).toBe(3)
    socket.close()
  })
})

describe('a revoked key', () => {
  test('closes its sockets with 1008 within the key-cache window, whoever revoked it', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const byHeader = await keySocket(url, key)
    const byTicket = await TestSocket.open(wsUrl(url, `?ticket=${await ticketFor(t, key)}`))
    const bystander = await keySocket(url, await t.key())
    await byHeader.sync()
    await byTicket.sync()
    // Revoked through another store on the same database, as another instance or the keys CLI would.
    const started = performance.now()
    expect(await keyStore(t.database).revoke(idOf(key), Date.now())).toBe(true)
    expect(await byHeader.closed).toEqual({ code: 1008, reason: 'the API key was revoked' })
    expect(await byTicket.closed).toEqual({ code: 1008, reason: 'the API key was revoked' })
    expect(performance.now() - started).toBeLessThan(2500)
    await bystander.sync()
    bystander.close()
  })

  test('its tickets die with it', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const ticket = await ticketFor(t, key)
    expect(await t.keys.revoke(idOf(key), Date.now())).toBe(true)
    const refused = await upgradeRequest(url, `?ticket=${ticket}`)
    expect(refused.status).toBe(401)
    expect((await problemOf(refused)).detail).toContain('revoked')
    expect(t.feed.hub.connections).toBe(0)
  })

  test.skipIf(!needs('postgres'))('closes its sockets on every instance when the keys CLI revokes it (PostgreSQL)', async () => {
    const database = await testDatabase(tempDir(), 'postgres')
    try {
      const key = await cliKey(database.url, 'revoked-everywhere')
      const env = { DATABASE_URL: database.url, MODELS_DIR: join(tempDir(), 'models') }
      await using a = await startServer(env)
      await using b = await startServer(env)
      const onA = await keySocket(a.url, key)
      const onB = await keySocket(b.url, key)
      await onA.sync()
      await onB.sync()
      const revoke = Bun.spawn([process.execPath, 'src/platform/keys/cli.ts', 'revoke', key], {
        cwd: join(import.meta.dir, '..'), env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'warn' }, stdout: 'pipe', stderr: 'pipe',
      })
      expect(await revoke.exited).toBe(0)
      expect(await onA.closed).toEqual({ code: 1008, reason: 'the API key was revoked' })
      expect(await onB.closed).toEqual({ code: 1008, reason: 'the API key was revoked' })
    } finally {
      await database.drop()
    }
  })
})

describe('a socket message nested deeper than 64 levels', () => {
  /** `levels` arrays, one inside the other. */
  const nested = (levels: number): unknown => {
    let value: unknown = 1
    for (let i = 0; i < levels; i++) value = [value]
    return value
  }

  test('is refused with bad_data and stores nothing; 64 levels in all pass', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const socket = await keySocket(t.listen(), key)
    socket.send({ op: 'subscribe', topic: 'sensors/deep' })
    expect((await socket.next()).op).toBe('subscribed')
    // The message is level 1 and its data level 2: data may hold 62 more levels (64 in all).
    socket.send({ op: 'publish', topic: 'sensors/deep', data: { v: nested(63) } })
    expect(await socket.next()).toMatchObject({ op: 'error', code: 'bad_data' })
    socket.send({ op: 'publish', topic: 'sensors/deep', data: { v: nested(5_000) } })
    expect(await socket.next()).toMatchObject({ op: 'error', code: 'bad_data' })
    socket.send({ op: 'publish', topic: 'sensors/deep', data: { v: nested(62) } })
    expect(await socket.next()).toMatchObject({ topic: 'sensors/deep', seq: 1 })
    expect((await readings(t, key, 'deep')).items.map((item) => item.seq)).toEqual([1])
    socket.close()
  })
})
