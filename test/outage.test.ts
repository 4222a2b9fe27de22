import { describe, expect, test } from 'bun:test'
import { RedisClient, SQL } from 'bun'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import { openDatabase } from '../src/db'
import { keyStore } from '../src/platform/keys/store'
import { createKey } from '../src/platform/keys'
import { createLogger } from '../src/platform/logger'
import { RedisLimiter, redisOptions } from '../src/platform/ratelimit'
import { eventually } from './eventually'
import { needs, postgresBase, problemOf } from './helpers'
import { tcpProxy } from './proxy'

describe('a dependency goes away and comes back', () => {
  test.skipIf(!needs('postgres'))('PostgreSQL cut: requests fail fast with 503 problem+json, readyz says so, then it recovers by itself', async () => {
    const name = `taskmesh_outage_${crypto.randomUUID().slice(0, 8)}`
    const admin = new SQL(`${postgresBase}/postgres`)
    await admin.unsafe(`CREATE DATABASE "${name}"`)
    const upstream = new URL(postgresBase)
    using proxy = tcpProxy(Number(upstream.port || 5432), upstream.hostname)
    const url = `postgres://${upstream.username}@127.0.0.1:${proxy.port}/${name}`
    const database = await openDatabase(url)
    const keys = keyStore(database)
    try {
      const app = createApp({ config: loadConfig({ DATABASE_URL: url, RATE_LIMIT: 'off', SERVICES: 'tasks' }), database, keys, log: createLogger('silent') })
      const { raw: key } = await createKey(keys, 'uma', ['tasks:read', 'tasks:write'])
      const list = () => app.handle(new Request('http://localhost/v1/tasks', { headers: { 'x-api-key': key } }))
      expect((await list()).status).toBe(200)

      proxy.cut()
      const started = performance.now()
      const down = await list()
      expect(down.status).toBe(503)
      expect(down.headers.get('retry-after')).toBe('1')
      expect((await problemOf(down)).detail).toContain('unavailable')
      expect(performance.now() - started).toBeLessThan(5000)
      const ready = await app.handle(new Request('http://localhost/readyz'))
      expect(ready.status).toBe(503)
      expect(((await ready.json()) as { checks: Record<string, boolean> }).checks.database).toBe(false)

      proxy.restore()
      await eventually(async () => (await list()).status === 200, { what: 'requests succeed again', timeoutMs: 5000, intervalMs: 50 })
      expect((await app.handle(new Request('http://localhost/readyz'))).status).toBe(200)
    } finally {
      await database.close()
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      await admin.close()
    }
  })

  test.skipIf(!needs('redis'))('Redis cut: the rate limiter keeps limiting on its own, then shares again', async () => {
    using proxy = tcpProxy(6379)
    const redis = new RedisClient(`redis://127.0.0.1:${proxy.port}`, redisOptions)
    await redis.connect()
    const limiter = new RedisLimiter(redis, `test:${crypto.randomUUID()}:`)
    const limit = { rate: 1, burst: 2 }
    expect((await limiter.take('a', limit)).allowed).toBe(true)
    expect(limiter.degraded).toBe(false)
    proxy.cut()
    const results = [await limiter.take('b', limit), await limiter.take('b', limit), await limiter.take('b', limit)]
    expect(results.map((r) => r.allowed)).toEqual([true, true, false])
    expect(limiter.degraded).toBe(true)
    proxy.restore()
    await eventually(async () => {
      await limiter.take('c', limit)
      return !limiter.degraded
    }, { what: 'the limiter shares through Redis again', timeoutMs: 5000, intervalMs: 50 })
    redis.close()
  })
})

describe('the shared sensor feed goes away', () => {
  test.skipIf(!needs('redis'))('sockets are closed with 1012 so clients reconnect and resume', async () => {
    const { startServer, cliKey } = await import('./server')
    const { TestSocket, wsUrl } = await import('./sensors.helpers')
    const { tempDir } = await import('./helpers')
    const { join } = await import('node:path')
    using proxy = tcpProxy(6379)
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'pia')
    const prefix = `test:${crypto.randomUUID().slice(0, 8)}:`
    await using server = await startServer({ DATABASE_URL: databaseUrl, REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_PREFIX: prefix })
    const socket = await TestSocket.open(wsUrl(server.url), { 'x-api-key': key })
    socket.send({ op: 'subscribe', topic: 'sensors/outage' })
    expect(await socket.next()).toMatchObject({ op: 'subscribed', topic: 'sensors/outage', recovered: true })
    proxy.cut()
    expect((await socket.closed).code).toBe(1012)
    proxy.restore()
  })
})
