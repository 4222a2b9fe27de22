// Two real instances on PostgreSQL and Redis, as a load balancer would see them:
// state, idempotency, If-Match races, rate limits, tickets and the sensor feed
// must behave as one service whichever instance a request lands on.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { join } from 'node:path'
import { eventually } from './eventually'
import { copyModels, needs, tempDir, testDatabase } from './helpers'
import { TestSocket, wsUrl } from './sensors.helpers'
import { cliKey, startServer, type RunningServer } from './server'

const run = needs('postgres') && needs('redis')

describe.skipIf(!run)('two instances on PostgreSQL and Redis', () => {
  const prefix = `test:${crypto.randomUUID().slice(0, 8)}:`
  let database: Awaited<ReturnType<typeof testDatabase>>
  let a: RunningServer
  let b: RunningServer
  let key: string
  let admin: string

  beforeAll(async () => {
    database = await testDatabase(tempDir(), 'postgres')
    key = await cliKey(database.url, 'nia')
    admin = await cliKey(database.url, 'ops', ['admin'])
    // One models folder for both, as a shared volume would be.
    const models = copyModels(join(tempDir(), 'models'))
    const env = { DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: prefix, RATE_LIMIT: '1000/1000', MODELS_DIR: models }
    ;[a, b] = await Promise.all([startServer(env), startServer(env)])
  })

  afterAll(async () => {
    await Promise.all([a?.[Symbol.asyncDispose](), b?.[Symbol.asyncDispose]()])
    await database?.drop()
    const redis = new RedisClient('redis://127.0.0.1:6379')
    const keys = (await redis.send('KEYS', [`${prefix}*`])) as string[]
    if (keys.length) await redis.send('DEL', keys)
    redis.close()
  })

  const call = (server: RunningServer, path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers)
    headers.set('x-api-key', key)
    if (init.json !== undefined) headers.set('content-type', 'application/json')
    return fetch(`${server.url}${path}`, { ...init, headers, body: init.json === undefined ? init.body : JSON.stringify(init.json) })
  }

  test('a write on one instance is read on the other', async () => {
    const created = await call(a, '/v1/tasks', { method: 'POST', json: { title: 'shared' } })
    expect(created.status).toBe(201)
    const task = await created.json()
    const read = await call(b, `/v1/tasks/${(task as { id: number }).id}`)
    expect(read.status).toBe(200)
    expect(await read.json()).toEqual(task)
  })

  test('two instances patching the same version: exactly one 200 and one 412', async () => {
    const { id } = (await (await call(a, '/v1/tasks', { method: 'POST', json: { title: 'race' } })).json()) as { id: number }
    for (let round = 1; round <= 5; round++) {
      const ifMatch = `"${id}.${round}"`
      const [x, y] = await Promise.all([
        call(a, `/v1/tasks/${id}`, { method: 'PATCH', json: { title: `a${round}` }, headers: { 'if-match': ifMatch } }),
        call(b, `/v1/tasks/${id}`, { method: 'PATCH', json: { title: `b${round}` }, headers: { 'if-match': ifMatch } }),
      ])
      expect([x.status, y.status].sort()).toEqual([200, 412])
    }
  })

  test('an Idempotency-Key sent to both instances at once makes one task', async () => {
    const send = (server: RunningServer) => call(server, '/v1/tasks', { method: 'POST', json: { title: 'once' }, headers: { 'idempotency-key': `k-${crypto.randomUUID()}` } })
    const idem = `k-${crypto.randomUUID()}`
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      call(i % 2 ? a : b, '/v1/tasks', { method: 'POST', json: { title: 'once' }, headers: { 'idempotency-key': idem } })))
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(201))
    const ids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { id: number }).id)))
    expect(ids.size).toBe(1)
    expect((await send(a)).status).toBe(201)
  })

  test('a ticket issued by one instance opens a socket on the other, once', async () => {
    const { ticket } = (await (await call(a, '/v1/sensors/tickets', { method: 'POST' })).json()) as { ticket: string }
    const socket = await TestSocket.open(wsUrl(b.url, `?ticket=${ticket}`))
    socket.close()
    await expect(TestSocket.open(wsUrl(a.url, `?ticket=${ticket}`))).rejects.toThrow()
  })

  test('a subscriber on one instance gets every publish from both, once, in seq order; replay resumes on the other', async () => {
    const topic = `sensors/c-${crypto.randomUUID().slice(0, 8)}`
    const sensor = topic.slice('sensors/'.length)
    const onA = await TestSocket.open(wsUrl(a.url), { 'x-api-key': key })
    onA.send({ op: 'subscribe', topic })
    const [subscribed] = await onA.take(1)
    expect(subscribed).toMatchObject({ op: 'subscribed', topic, recovered: true })
    const epoch = subscribed!.epoch as string
    // Publishers on both instances, over HTTP and over a socket.
    const publisher = await TestSocket.open(wsUrl(b.url), { 'x-api-key': key })
    for (let i = 1; i <= 30; i++) {
      if (i % 3 === 0) publisher.send({ op: 'publish', topic, data: { i } })
      else expect((await call(i % 2 ? a : b, `/v1/sensors/${sensor}/readings`, { method: 'POST', json: { i } })).status).toBe(202)
    }
    const live = await onA.take(30)
    expect(live.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(new Set(live.map((m) => (m.data as { i: number }).i)).size).toBe(30)
    onA.close()

    // More readings while the client is away, then it comes back on the other instance.
    for (let i = 31; i <= 40; i++) await call(a, `/v1/sensors/${sensor}/readings`, { method: 'POST', json: { i } })
    const onB = await TestSocket.open(wsUrl(b.url), { 'x-api-key': key })
    onB.send({ op: 'subscribe', topic, since: 30, epoch })
    const [resumed] = await onB.take(1)
    expect(resumed).toEqual({ op: 'subscribed', topic, epoch, recovered: true })
    // Published during the resubscribe: must arrive after the replay, once.
    const during = call(b, `/v1/sensors/${sensor}/readings`, { method: 'POST', json: { i: 41 } })
    const replayed = await onB.take(11)
    expect(replayed.map((m) => m.seq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 31))
    expect((await during).status).toBe(202)
    await onB.sync()
    expect(onB.pending()).toEqual([])

    const history = (await (await call(b, `/v1/sensors/${sensor}/readings?since=35&limit=3`)).json()) as { epoch: string; items: Array<{ seq: number }> }
    expect(history.epoch).toBe(epoch)
    expect(history.items.map((r) => r.seq)).toEqual([36, 37, 38])
    const sensors = (await (await call(a, '/v1/sensors')).json()) as { items: Array<{ sensor_id: string; last: { seq: number } }> }
    expect(sensors.items.find((s) => s.sensor_id === sensor)?.last.seq).toBe(41)
    onB.close()
    publisher.close()
  })

  test('a model uploaded through one instance serves on the other at once', async () => {
    const model = { name: 'shared-linear', version: '7', kind: 'linear', features: ['x', 'y'], coef: [2, 3], intercept: 1 }
    const put = await fetch(`${a.url}/v1/models/shared-linear`, {
      method: 'PUT', headers: { 'x-api-key': admin, 'content-type': 'application/json' }, body: JSON.stringify(model),
    })
    expect(put.status).toBe(201)
    // Well before the 5 s safety poll: the announcement (or the watcher) brings it.
    await eventually(async () => (await call(b, '/v1/models/shared-linear')).status === 200, { what: 'the other instance serves the model', timeoutMs: 2000, intervalMs: 25 })
    const predicted = await call(b, '/v1/models/shared-linear/predict', { method: 'POST', json: { features: { x: 1, y: 1 } } })
    expect(await predicted.json()).toEqual({ model: 'shared-linear', version: '7', predictions: [6] })
  })

  test('rate limits are shared', async () => {
    const limitedPrefix = `${prefix}rl2:`
    const env = { DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: limitedPrefix, RATE_LIMIT: '1/3' }
    await using x = await startServer(env)
    await using y = await startServer(env)
    const statuses = []
    for (const server of [x, y, x, y]) statuses.push((await call(server, '/v1/tasks?limit=1')).status)
    expect(statuses).toEqual([200, 200, 200, 429])
  })
})
