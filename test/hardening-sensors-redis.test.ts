// The shared sensor feed in a real Redis stays bounded: topics are capped cluster-wide (least
// recently published forgotten first), every key expires when idle, subscribing creates no key,
// and the listing reads a bounded number of topics.
import { afterAll, describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { TOPIC_IDLE_MS } from '../src/sensors/history'
import { SensorHub } from '../src/sensors/hub'
import { RedisFeed } from '../src/sensors/redis'
import { eventually } from './eventually'
import { needs } from './helpers'

const REDIS_URL = 'redis://127.0.0.1:6379'
const run = needs('redis')

describe.skipIf(!run)('the shared sensor feed in Redis', () => {
  const root = `test:${crypto.randomUUID().slice(0, 8)}:`
  const clients: RedisClient[] = []
  const feeds: RedisFeed[] = []

  afterAll(async () => {
    for (const feed of feeds) feed.close()
    const redis = clients[0]
    if (redis) {
      const keys = (await redis.send('KEYS', [`${root}*`])) as string[]
      if (keys.length) await redis.send('DEL', keys)
    }
    for (const client of clients) client.close()
  })

  /** A feed (and a hub over it, as an instance has) on a prefix of its own; `prefix` to share one. */
  async function instance(options: { maxTopics?: number; prefix?: string } = {}) {
    const redis = new RedisClient(REDIS_URL)
    await redis.connect()
    clients.push(redis)
    const prefix = options.prefix ?? `${root}${crypto.randomUUID().slice(0, 8)}:`
    const feed = new RedisFeed(redis, REDIS_URL, prefix, { maxTopics: options.maxTopics })
    feeds.push(feed)
    const hub = new SensorHub(feed)
    return { redis, prefix, feed, hub, keys: async () => ((await redis.send('KEYS', [`${prefix}*`])) as string[]).sort() }
  }

  const listed = async (hub: SensorHub) => (await hub.list()).map((s) => s.sensor_id)

  test('past maxTopics the least recently published topics and all their keys are forgotten; every key expires when idle', async () => {
    const { redis, prefix, hub, keys } = await instance({ maxTopics: 5 })
    for (let i = 1; i <= 8; i++) await hub.publish(`sensors/t${i}`, { i })
    await hub.publish('sensors/t2', { again: true })
    expect(await listed(hub)).toEqual(['t2', 't5', 't6', 't7', 't8'])
    const perTopic = (topic: string) => ['seq', 'epoch', 'stream'].map((kind) => `${prefix}sensors:${kind}:sensors/${topic}`)
    expect(await keys()).toEqual([
      ...['latest', 'topics'].map((name) => `${prefix}sensors:${name}`),
      ...['t2', 't5', 't6', 't7', 't8'].flatMap(perTopic),
    ].sort())
    for (const key of await keys()) {
      const ttl = (await redis.send('PTTL', [key])) as number
      expect(ttl, key).toBeGreaterThan(0)
      expect(ttl, key).toBeLessThanOrEqual(TOPIC_IDLE_MS)
    }
    expect(await hub.readings('sensors/t1', 0, 10)).toEqual({ epoch: null, items: [] })
    const { seq } = await hub.publish('sensors/t1', { back: true })
    expect(seq).toBe(1)
  })

  test('subscribing and reading create no key; the first publish keeps the epoch subscribers were told, on any instance', async () => {
    const a = await instance({ maxTopics: 5 })
    const b = await instance({ maxTopics: 5, prefix: a.prefix })
    const told = await a.feed.epoch('sensors/new')
    expect(await b.feed.epoch('sensors/new')).toBe(told)
    for (let i = 0; i < 20; i++) {
      await a.feed.epoch(`sensors/ghost-${i}`)
      expect(await b.hub.readings(`sensors/unread-${i}`, 0, 10)).toEqual({ epoch: null, items: [] })
    }
    // The promised epochs are kept for at most maxTopics topics, in two keys; no topic was created.
    expect(await a.keys()).toEqual([`${a.prefix}sensors:promised`, `${a.prefix}sensors:promised-at`])
    expect((await a.redis.send('HLEN', [`${a.prefix}sensors:promised`])) as number).toBe(5)
    const promised = await b.feed.epoch('sensors/ghost-19')
    await b.hub.publish('sensors/ghost-19', { v: 1 })
    expect((await a.hub.readings('sensors/ghost-19', 0, 10)).epoch).toBe(promised)
    expect(await listed(a.hub)).toEqual(['ghost-19'])
    // 'sensors/new' was pushed out of the promises by newer ones: its first publish starts another epoch.
    await b.hub.publish('sensors/new', { v: 1 })
    expect((await a.hub.readings('sensors/new', 0, 10)).epoch).not.toBe(told)
  })

  test('followers of a topic the shared feed forgot are told its history started again', async () => {
    const { feed, hub } = await instance({ maxTopics: 3 })
    const restarts: Array<[string, string]> = []
    const delivered: Array<[string, string, number]> = []
    await feed.listen({
      deliver: (topic, epoch, seq) => void delivered.push([topic, epoch, seq]),
      restart: (topic, epoch) => void restarts.push([topic, epoch]),
      follows: (topic) => topic === 'sensors/followed',
    })
    const first = await hub.publish('sensors/followed', { v: 1 })
    const epoch = (await hub.readings('sensors/followed', 0, 10)).epoch!
    for (let i = 0; i < 4; i++) await hub.publish(`sensors/other-${i}`, { i })
    expect(await listed(hub)).not.toContain('followed')
    const again = await hub.publish('sensors/followed', { v: 2 })
    expect(again.seq).toBe(1)
    const now = (await hub.readings('sensors/followed', 0, 10)).epoch!
    expect(now).not.toBe(epoch)
    const followed = () => delivered.filter(([topic]) => topic === 'sensors/followed').map(([, e, seq]) => [e, seq])
    await eventually(() => followed().length === 2, { what: 'both readings of the followed topic arrived' })
    expect(followed()).toEqual([[epoch, first.seq], [now, 1]])
    expect(restarts).toEqual([['sensors/followed', now]])
  })

  test('a topic idle for 24 h leaves the listing, and is deleted with the next publish', async () => {
    const { redis, prefix, hub, keys } = await instance()
    await hub.publish('sensors/idle', { v: 1 })
    await hub.publish('sensors/busy', { v: 1 })
    // As if its last reading were 24 h and a second old (Redis' own clock decides).
    const [seconds] = (await redis.send('TIME', [])) as [string, string]
    await redis.send('ZADD', [`${prefix}sensors:topics`, String(Number(seconds) * 1000 - TOPIC_IDLE_MS - 1000), 'sensors/idle'])
    expect(await listed(hub)).toEqual(['busy'])
    await hub.publish('sensors/busy', { v: 2 })
    expect((await keys()).filter((key) => key.includes('sensors/idle'))).toEqual([])
    expect(await hub.readings('sensors/idle', 0, 10)).toEqual({ epoch: null, items: [] })
  })

  test('the listing reads at most maxTopics topics', async () => {
    const { redis, prefix, hub } = await instance({ maxTopics: 3 })
    for (const id of ['a', 'b', 'c']) await hub.publish(`sensors/${id}`, { id })
    // Topics another writer left past the cap (as an older version did) are not read.
    const [seconds] = (await redis.send('TIME', [])) as [string, string]
    for (const id of ['x', 'y']) {
      await redis.send('ZADD', [`${prefix}sensors:topics`, String(Number(seconds) * 1000 + 60_000), `sensors/${id}`])
      await redis.send('HSET', [`${prefix}sensors:latest`, `sensors/${id}`, JSON.stringify({ topic: `sensors/${id}`, seq: 1, ts: new Date().toISOString(), data: {} })])
    }
    expect(await listed(hub)).toEqual(['c', 'x', 'y'])
  })
})
