// The sensor feed over HTTP: publish, readings, list, tickets, validation, auth,
// and the memory feed's bounded history and replay decisions (small caps, an injected clock).
import { describe, expect, test } from 'bun:test'
import { sensorFeed, socketLimitsFor } from '../src/sensors'
import { Recovery, type Replay } from '../src/sensors/recovery'
import { startSimulator } from '../src/sensors/simulator'
import { MemoryTicketStore } from '../src/sensors/tickets'
import { problemOf } from './helpers'
import { publish, readings, sensorApp, type SensorApp } from './sensors.helpers'

const T0 = Date.parse('2030-01-02T03:04:05.000Z')
const iso = (ms: number) => new Date(ms).toISOString()

describe('POST /v1/sensors/{sensor_id}/readings', () => {
  test('accepts any JSON object with 202 { topic, seq }, seq rising by one per topic', async () => {
    await using t = await sensorApp({ now: () => T0 })
    const key = await t.key()
    expect(await publish(t, key, 't1', { temperature: 21.5 })).toEqual({ topic: 'sensors/t1', seq: 1 })
    expect(await publish(t, key, 't1', { temperature: 22 })).toEqual({ topic: 'sensors/t1', seq: 2 })
    expect(await publish(t, key, 'other.sensor_2-x', {})).toEqual({ topic: 'sensors/other.sensor_2-x', seq: 1 })
    expect(await publish(t, key, 't1', { nested: { a: [1, 'two', null] }, ok: true })).toEqual({ topic: 'sensors/t1', seq: 3 })
    const page = await readings(t, key, 't1')
    expect(page).toEqual({
      epoch: expect.any(String),
      items: [
        { topic: 'sensors/t1', seq: 1, ts: iso(T0), data: { temperature: 21.5 } },
        { topic: 'sensors/t1', seq: 2, ts: iso(T0), data: { temperature: 22 } },
        { topic: 'sensors/t1', seq: 3, ts: iso(T0), data: { nested: { a: [1, 'two', null] }, ok: true } },
      ],
    })
  })

  test('a body that is not a JSON object is 422 and publishes nothing', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    for (const body of ['[1,2]', 'null', '5', '"text"', 'true']) {
      const response = await t.request('/v1/sensors/s/readings', { method: 'POST', key, body, headers: { 'content-type': 'application/json' } })
      expect(response.status).toBe(422)
      expect((await problemOf(response)).errors?.[0]?.field).toBe('body')
    }
    expect(await readings(t, key, 's')).toEqual({ epoch: null, items: [] })
  })

  test('16 KiB of body is accepted, one byte more is 413', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const body = (bytes: number) => `{"v":"${'x'.repeat(bytes - 8)}"}`
    expect(body(16 * 1024).length).toBe(16 * 1024)
    const ok = await t.request('/v1/sensors/big/readings', { method: 'POST', key, body: body(16 * 1024), headers: { 'content-type': 'application/json' } })
    expect(ok.status).toBe(202)
    const over = await t.request('/v1/sensors/big/readings', { method: 'POST', key, body: body(16 * 1024 + 1), headers: { 'content-type': 'application/json' } })
    expect(over.status).toBe(413)
    await problemOf(over)
  })

  test('checks in the order 415, 413, 400, 422', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const big = `[${'1,'.repeat(9000)}1]`
    const cases: Array<[string, string, number]> = [
      ['text/plain', big, 415],
      ['application/json', big, 413],
      ['application/json', '{"a":', 400],
      ['application/json', '[1]', 422],
    ]
    for (const [type, body, status] of cases) {
      const response = await t.request('/v1/sensors/order/readings', { method: 'POST', key, body, headers: { 'content-type': type } })
      expect(response.status).toBe(status)
      await problemOf(response)
    }
  })

  test.each([
    ['empty', '%20'], ['too long', 'x'.repeat(65)], ['slash', 'a%2Fb'], ['space', 'a%20b'], ['unicode', '%C3%A9'],
  ])('a bad sensor_id (%s) is 422 naming params.sensor_id', async (_, id) => {
    await using t = await sensorApp()
    const key = await t.key()
    const response = await t.request(`/v1/sensors/${id}/readings`, { method: 'POST', key, json: { a: 1 } })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors).toEqual([{ field: 'params.sensor_id', message: 'must be 1 to 64 of A-Z a-z 0-9 _ . -' }])
  })

  test('64 characters of sensor_id are fine', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    const id = 'a'.repeat(64)
    expect(await publish(t, key, id, { a: 1 })).toEqual({ topic: `sensors/${id}`, seq: 1 })
  })
})

describe('GET /v1/sensors/{sensor_id}/readings', () => {
  test('since and limit page through the history, oldest first', async () => {
    await using t = await sensorApp({ now: () => T0 })
    const key = await t.key()
    for (let i = 1; i <= 10; i++) await publish(t, key, 'p', { i })
    const all = await readings(t, key, 'p')
    expect(all.items.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    const page = await readings(t, key, 'p', '?since=4&limit=3')
    expect(page).toEqual({
      epoch: all.epoch,
      items: [5, 6, 7].map((seq) => ({ topic: 'sensors/p', seq, ts: iso(T0), data: { i: seq } })),
    })
    expect((await readings(t, key, 'p', '?since=10')).items).toEqual([])
    expect((await readings(t, key, 'p', '?since=99')).items).toEqual([])
  })

  test('defaults to 100 items and allows 1000', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    for (let i = 0; i < 1001; i++) t.feed.hub.publish('sensors/many', { i })
    expect((await readings(t, key, 'many')).items.length).toBe(100)
    const max = await readings(t, key, 'many', '?limit=1000')
    expect(max.items.length).toBe(1000)
    expect(max.items[0]!.seq).toBe(2)
    expect(max.items.at(-1)!.seq).toBe(1001)
  })

  test('a topic nobody published to is an empty list', async () => {
    await using t = await sensorApp()
    const key = await t.key()
    expect(await readings(t, key, 'never')).toEqual({ epoch: null, items: [] })
  })

  test.each([
    ['since=-1', 'query.since'], ['since=abc', 'query.since'], ['since=1.5', 'query.since'],
    ['limit=0', 'query.limit'], ['limit=1001', 'query.limit'], ['limit=x', 'query.limit'], ['other=1', 'query.other'],
  ])('%s is 422 naming %s', async (query, field) => {
    await using t = await sensorApp()
    const key = await t.key()
    const response = await t.request(`/v1/sensors/q/readings?${query}`, { key })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors?.map((e) => e.field)).toContain(field)
  })
})

describe('GET /v1/sensors', () => {
  test('lists every sensor with its last reading, by sensor_id', async () => {
    await using t = await sensorApp({ now: () => T0 })
    const key = await t.key()
    const empty = await t.request('/v1/sensors', { key })
    expect(await empty.json()).toEqual({ items: [] })
    await publish(t, key, 'zeta', { v: 1 })
    await publish(t, key, 'alpha', { v: 1 })
    await publish(t, key, 'alpha', { v: 2 })
    const response = await t.request('/v1/sensors', { key })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      items: [
        { sensor_id: 'alpha', topic: 'sensors/alpha', last: { topic: 'sensors/alpha', seq: 2, ts: iso(T0), data: { v: 2 } } },
        { sensor_id: 'zeta', topic: 'sensors/zeta', last: { topic: 'sensors/zeta', seq: 1, ts: iso(T0), data: { v: 1 } } },
      ],
    })
  })
})

describe('auth', () => {
  test('every route needs a key: 401 with WWW-Authenticate', async () => {
    await using t = await sensorApp()
    const calls: Array<[string, string]> = [
      ['GET', '/v1/sensors'], ['POST', '/v1/sensors/a/readings'], ['GET', '/v1/sensors/a/readings'], ['POST', '/v1/sensors/tickets'],
    ]
    for (const [method, path] of calls) {
      const response = await t.request(path, { method, json: method === 'POST' ? {} : undefined })
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toStartWith('Bearer')
      await problemOf(response)
    }
  })

  test('publishing needs sensors:write, reading needs sensors:read', async () => {
    await using t = await sensorApp()
    const reader = await t.key(undefined, ['sensors:read'])
    const writer = await t.key(undefined, ['sensors:write'])
    const denied = await t.request('/v1/sensors/a/readings', { method: 'POST', key: reader, json: { a: 1 } })
    expect(denied.status).toBe(403)
    expect((await problemOf(denied)).detail).toContain('sensors:write')
    expect(await publish(t, writer, 'a', { a: 1 })).toEqual({ topic: 'sensors/a', seq: 1 })
    for (const path of ['/v1/sensors', '/v1/sensors/a/readings']) {
      expect((await t.request(path, { key: writer })).status).toBe(403)
      expect((await t.request(path, { key: reader })).status).toBe(200)
    }
    expect((await t.request('/v1/sensors/tickets', { method: 'POST', key: writer })).status).toBe(403)
  })

  test('an admin key may do everything', async () => {
    await using t = await sensorApp()
    const admin = await t.key(undefined, ['admin'])
    expect(await publish(t, admin, 'a', { a: 1 })).toEqual({ topic: 'sensors/a', seq: 1 })
    expect((await t.request('/v1/sensors', { key: admin })).status).toBe(200)
  })
})

describe('POST /v1/sensors/tickets', () => {
  test('201 with a ticket valid for 30 s', async () => {
    await using t = await sensorApp({ now: () => T0 })
    const key = await t.key()
    const response = await t.request('/v1/sensors/tickets', { method: 'POST', key })
    expect(response.status).toBe(201)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.json()).toEqual({ ticket: expect.stringMatching(/^tk_[A-Za-z0-9_-]{43}$/), expires_at: iso(T0 + 30_000) })
  })
})

describe('MemoryTicketStore', () => {
  const principal = { keyId: 'abcdefgh', owner: 'o', scopes: new Set(['sensors:read']) }

  test('a ticket is used up by its first redemption', () => {
    const store = new MemoryTicketStore()
    const { ticket } = store.issue(principal)
    expect(store.redeem(ticket)).toEqual(principal)
    expect(store.redeem(ticket)).toBeNull()
  })

  test('a ticket expires after 30 s', () => {
    let now = T0
    const store = new MemoryTicketStore({ now: () => now })
    const early = store.issue(principal)
    const late = store.issue(principal)
    expect(early.expiresAt).toBe(T0 + 30_000)
    now = T0 + 29_999
    expect(store.redeem(early.ticket)).toEqual(principal)
    now = T0 + 30_000
    expect(store.redeem(late.ticket)).toBeNull()
  })

  test('forged tickets are refused, and expired ones are swept when new ones are issued', () => {
    let now = T0
    const store = new MemoryTicketStore({ now: () => now, max: 3 })
    expect(store.redeem('tk_' + 'A'.repeat(43))).toBeNull()
    expect(store.redeem('not a ticket')).toBeNull()
    for (let i = 0; i < 5; i++) store.issue(principal)
    expect(store.size).toBe(3)
    now += 30_000
    store.issue(principal)
    expect(store.size).toBe(1)
  })
})

describe('history bounds', () => {
  test('each topic keeps its last historySize readings', async () => {
    const { hub } = sensorFeed({ historySize: 5, now: () => T0 })
    for (let i = 1; i <= 12; i++) hub.publish('sensors/h', { i })
    const { epoch, items } = (await hub.readings('sensors/h', 0, 100))
    expect(items.map((r) => r.seq)).toEqual([8, 9, 10, 11, 12])
    expect((await hub.readings('sensors/h', 10, 100))).toEqual({ epoch, items: [11, 12].map((seq) => ({ topic: 'sensors/h', seq, ts: iso(T0), data: { i: seq } })) })
  })

  test('past maxTopics the least recently published topic is forgotten; it restarts in a new epoch', async () => {
    const { hub, source } = sensorFeed({ maxTopics: 3 })
    for (const id of ['a', 'b', 'c']) hub.publish(`sensors/${id}`, { id })
    const epochA = (await hub.readings('sensors/a', 0, 10)).epoch
    hub.publish('sensors/a', { again: true }) // a is now the most recent; b the least
    hub.publish('sensors/d', { id: 'd' })
    expect(source.topics).toBe(3)
    expect(source.evictions).toBe(1)
    expect((await hub.readings('sensors/b', 0, 10))).toEqual({ epoch: null, items: [] })
    expect((await hub.list()).map((s) => s.sensor_id)).toEqual(['a', 'c', 'd'])
    expect((await hub.readings('sensors/a', 0, 10)).epoch).toBe(epochA)
    expect(hub.publish('sensors/b', { back: true })).toEqual({ topic: 'sensors/b', seq: 1 })
    expect((await hub.readings('sensors/b', 0, 10)).epoch).not.toBeNull()
    expect((await hub.list()).map((s) => s.sensor_id)).toEqual(['a', 'b', 'd'])
  })

  test('past maxHistoryBytes old topics go first, then the oldest readings of a topic too big alone', async () => {
    const payload = 'x'.repeat(1000)
    const { hub } = sensorFeed({ maxHistoryBytes: 10_000 })
    for (let i = 0; i < 5; i++) hub.publish('sensors/old', { payload })
    for (let i = 0; i < 8; i++) hub.publish('sensors/new', { payload })
    expect((await hub.readings('sensors/old', 0, 100))).toEqual({ epoch: null, items: [] })
    expect((await hub.readings('sensors/new', 0, 100)).items.length).toBe(8)
    for (let i = 0; i < 20; i++) hub.publish('sensors/new', { payload })
    const kept = (await hub.readings('sensors/new', 0, 100)).items.map((r) => r.seq)
    expect(kept.length).toBeLessThan(10)
    expect(kept.at(-1)).toBe(28)
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 28 - kept.length + 1 + i))
  })

  test('data over 16 KiB of JSON is refused before anything is kept', () => {
    const { hub, source } = sensorFeed()
    expect(() => hub.publish('sensors/x', { v: 'é'.repeat(8200) })).toThrow('larger than 16384 bytes')
    expect(hub.published).toBe(0)
    expect(source.topics).toBe(0)
  })
})

describe('replay decisions', () => {
  test('recovered when every reading after since is kept, else nothing is replayed', async () => {
    const { hub, source } = sensorFeed({ historySize: 5 })
    for (let i = 1; i <= 8; i++) hub.publish('sensors/r', { i })
    const epoch = (await hub.readings('sensors/r', 0, 1)).epoch!
    const recovery = new Recovery(source)
    const seqs = (since?: number, e?: string) => {
      // Over a memory feed the decision is synchronous (no promise to await).
      const replay = recovery.replay('sensors/r', since, e) as Replay
      return { epoch: replay.epoch, recovered: replay.recovered, seqs: replay.frames.map((f) => (JSON.parse(f) as { seq: number }).seq) }
    }
    expect(seqs()).toEqual({ epoch, recovered: true, seqs: [] })
    expect(seqs(5, epoch)).toEqual({ epoch, recovered: true, seqs: [6, 7, 8] })
    expect(seqs(3)).toEqual({ epoch, recovered: true, seqs: [4, 5, 6, 7, 8] })
    expect(seqs(8)).toEqual({ epoch, recovered: true, seqs: [] })
    expect(seqs(2)).toEqual({ epoch, recovered: false, seqs: [] })
    expect(seqs(9)).toEqual({ epoch, recovered: false, seqs: [] })
    expect(seqs(5, 'another-epoch')).toEqual({ epoch, recovered: false, seqs: [] })
  })

  test('a new topic replays from 0, and nothing else', () => {
    const recovery = new Recovery(sensorFeed().source)
    expect(recovery.replay('sensors/new', 0)).toEqual({ epoch: expect.any(String), recovered: true, frames: [] })
    expect(recovery.replay('sensors/new2', 3)).toEqual({ epoch: expect.any(String), recovered: false, frames: [] })
  })
})

describe('socket message limits', () => {
  test('follow the sensors rate limit (RATE_LIMIT or RATE_LIMIT_SENSORS), per connection; none when off', () => {
    expect(socketLimitsFor({ rateLimit: { rate: 100, burst: 200 }, rateLimits: {} })).toEqual({ rate: 100, burst: 200, maxSubscriptions: 100 })
    expect(socketLimitsFor({ rateLimit: { rate: 100, burst: 200 }, rateLimits: { sensors: { rate: 5, burst: 9 } } })).toEqual({ rate: 5, burst: 9, maxSubscriptions: 100 })
    expect(socketLimitsFor({ rateLimit: { rate: 100, burst: 200 }, rateLimits: { sensors: null } })).toEqual({ rate: Infinity, burst: Infinity, maxSubscriptions: 100 })
    expect(socketLimitsFor({ rateLimit: null, rateLimits: {} })).toEqual({ rate: Infinity, burst: Infinity, maxSubscriptions: 100 })
  })
})

describe('simulator', () => {
  test('publishes through the hub at once and on every tick until stopped', async () => {
    const { hub } = sensorFeed()
    const simulator = startSimulator(hub, { intervalMs: 60_000 })
    simulator.stop()
    const list = (await hub.list())
    expect(list.map((s) => s.sensor_id)).toEqual(['co2-1', 'humidity-1', 'pressure-1', 'temperature-1'])
    const temperature = list.find((s) => s.sensor_id === 'temperature-1')!.last
    expect(temperature).toEqual({ topic: 'sensors/temperature-1', seq: 1, ts: expect.any(String), data: { temperature: expect.any(Number), unit: 'C' } })
    const celsius = (temperature.data as { temperature: number }).temperature
    expect(celsius).toBeGreaterThanOrEqual(20)
    expect(celsius).toBeLessThanOrEqual(30)
    expect(hub.published).toBe(4)
  })
})

describe('OpenAPI', () => {
  test('documents the sensor routes with every status', async () => {
    await using t = await sensorApp()
    const doc = (await (await t.request('/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>> }
    const publish = doc.paths['/v1/sensors/{sensor_id}/readings']!.post!
    expect(Object.keys(publish.responses).sort()).toEqual(['202', '400', '401', '403', '413', '415', '422', '429', '500'])
    expect(publish.requestBody).toBeDefined()
    expect(Object.keys(doc.paths['/v1/sensors/tickets']!.post!.responses).sort()).toEqual(['201', '401', '403', '429', '500'])
    expect(Object.keys(doc.paths['/v1/sensors/ws']!.get!.responses).sort()).toEqual(['101', '400', '401', '403', '422', '426', '429', '500', '503'])
  })
})
