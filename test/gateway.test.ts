import { describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import { createLogger } from '../src/platform/logger'
import { MemoryLimiter, RedisLimiter, type Limiter } from '../src/platform/ratelimit'
import { eventually } from './eventually'
import { needs, problemOf, testApp, type TestApp } from './helpers'

async function limitedApp(env: Record<string, string>, limiter: Limiter) {
  const t = await testApp()
  const config = loadConfig({ DATABASE_URL: t.config.databaseUrl, ...env })
  const app = createApp({ config, database: t.database, keys: t.keys, log: createLogger('silent'), limiter })
  const get = (key: string, path = '/v1/tasks') => app.handle(new Request(`http://localhost${path}`, { headers: { 'x-api-key': key } }))
  return { t, app, get }
}

describe('rate limiting', () => {
  test('429 with Retry-After and RateLimit headers, then recovery after the window', async () => {
    let now = 1_000_000
    const { t, get } = await limitedApp({ RATE_LIMIT: '2/3' }, new MemoryLimiter(() => now))
    await using _ = t
    const key = await t.key()
    const first = await get(key)
    expect(first.status).toBe(200)
    expect(first.headers.get('ratelimit-policy')).toBe('"default";q=3;w=2')
    expect(first.headers.get('ratelimit')).toBe('"default";r=2;t=1')
    expect((await get(key)).headers.get('ratelimit')).toBe('"default";r=1;t=1')
    expect((await get(key)).headers.get('ratelimit')).toBe('"default";r=0;t=2')
    const refused = await get(key)
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(refused.headers.get('ratelimit')).toBe('"default";r=0;t=2')
    expect(refused.headers.get('x-request-id')).toBeTruthy()
    await problemOf(refused)
    now += 500
    expect((await get(key)).status).toBe(200)
    expect((await get(key)).status).toBe(429)
    now += 1500
    expect((await get(key)).headers.get('ratelimit')).toBe('"default";r=2;t=1')
  })

  test('buckets are per key, and per client when anonymous', async () => {
    const now = 5_000
    const { t, get, app } = await limitedApp({ RATE_LIMIT: '1/1' }, new MemoryLimiter(() => now))
    await using _ = t
    const [a, b] = [await t.key(), await t.key()]
    expect((await get(a)).status).toBe(200)
    expect((await get(a)).status).toBe(429)
    expect((await get(b)).status).toBe(200)
    const anonymous = () => app.handle(new Request('http://localhost/v1/tasks'))
    expect((await anonymous()).status).toBe(401)
    expect((await anonymous()).status).toBe(429)
  })

  test('scope groups take their own limits; off disables one', async () => {
    const now = 9_000
    const { t, get } = await limitedApp({ RATE_LIMIT: '1/1', RATE_LIMIT_TASKS: 'off' }, new MemoryLimiter(() => now))
    await using _ = t
    const key = await t.key()
    for (let i = 0; i < 5; i++) {
      const response = await get(key)
      expect(response.status).toBe(200)
      expect(response.headers.get('ratelimit')).toBeNull()
    }
  })

  test('health, metrics and docs are not limited', async () => {
    const { t, app } = await limitedApp({ RATE_LIMIT: '1/1' }, new MemoryLimiter(() => 0))
    await using _ = t
    for (let i = 0; i < 3; i++) expect((await app.handle(new Request('http://localhost/healthz'))).status).toBe(200)
  })

  test.skipIf(!needs('redis'))('two instances share one bucket through Redis', async () => {
    const redis = new RedisClient('redis://127.0.0.1:6379')
    const prefix = `test:${crypto.randomUUID()}:`
    let now = 50_000
    const one = await limitedApp({ RATE_LIMIT: '1/4' }, new RedisLimiter(redis, prefix, () => now))
    const t = one.t
    await using _ = t
    const key = await t.key()
    const config = loadConfig({ DATABASE_URL: t.config.databaseUrl, RATE_LIMIT: '1/4' })
    const other = createApp({ config, database: t.database, keys: t.keys, log: createLogger('silent'), limiter: new RedisLimiter(redis, prefix, () => now) })
    const getOther = () => other.handle(new Request('http://localhost/v1/tasks', { headers: { 'x-api-key': key } }))
    const statuses = [await one.get(key), await getOther(), await one.get(key), await getOther(), await one.get(key), await getOther()]
      .map((r) => r.status)
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429])
    now += 1000
    expect((await getOther()).status).toBe(200)
    expect((await one.get(key)).status).toBe(429)
    const keys = (await redis.send('KEYS', [`${prefix}*`])) as string[]
    expect(keys.length).toBe(1)
    await redis.send('DEL', keys)
    redis.close()
  })
})

describe('peeking a bucket', () => {
  const limit = { rate: 1, burst: 2 }
  const drain = async (limiter: Limiter) => {
    expect(await limiter.peek('a', limit)).toMatchObject({ allowed: true, remaining: 2 })
    expect(await limiter.peek('a', limit)).toMatchObject({ allowed: true, remaining: 2 })
    await limiter.take('a', limit)
    await limiter.take('a', limit)
    expect(await limiter.peek('a', limit)).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 1 })
  }

  test('in memory: takes no token', async () => {
    await drain(new MemoryLimiter(() => 7_000))
  })

  test.skipIf(!needs('redis'))('in Redis: takes no token and writes nothing', async () => {
    const redis = new RedisClient('redis://127.0.0.1:6379')
    const prefix = `test:${crypto.randomUUID()}:`
    const limiter = new RedisLimiter(redis, prefix, () => 7_000)
    expect(await limiter.peek('b', limit)).toMatchObject({ allowed: true })
    expect(await redis.send('KEYS', [`${prefix}*`])).toEqual([])
    await drain(limiter)
    await redis.send('DEL', [`${prefix}a`])
    redis.close()
  })
})

describe('metrics', () => {
  test('requests are counted by route template and status', async () => {
    await using t = await testApp()
    const key = await t.key()
    const created = await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'm' } })
    const { id } = (await created.json()) as { id: number }
    await t.request(`/v1/tasks/${id}`, { key })
    await t.request('/v1/tasks/999999', { key })
    await t.request('/nowhere')
    expect((await t.request('/v1/sensors/m1/readings', { method: 'POST', key, json: { celsius: 21.5 } })).status).toBe(202)
    expect((await t.request('/v1/models/seed-linear/predict', { method: 'POST', key, json: { instances: [[1, 2, 3], [4, 5, 6]] } })).status).toBe(200)
    // Metrics are recorded after each response is sent: wait until only the scrape itself is in flight.
    const { response, text } = await eventually(async () => {
      const response = await t.request('/metrics')
      const text = await response.text()
      return /^http_requests_in_flight 1$/m.test(text) && { response, text }
    }, { what: 'only the scrape is in flight', timeoutMs: 1000, intervalMs: 1 })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith('text/plain')
    expect(text).toContain('http_requests_total{method="POST",route="/v1/tasks",status="201"} 1')
    expect(text).toContain('http_requests_total{method="GET",route="/v1/tasks/:id",status="200"} 1')
    expect(text).toContain('http_requests_total{method="GET",route="/v1/tasks/:id",status="404"} 1')
    expect(text).toContain('http_requests_total{method="GET",route="unmatched",status="404"} 1')
    expect(text).toMatch(/http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/v1\/tasks\/:id",status="200"\} \d/)
    expect(text).toContain('http_requests_in_flight')
    expect(text).toContain('process_cpu_seconds_total')
    if (t.config.databaseUrl.startsWith('sqlite:')) {
      expect(text).toMatch(/^sqlite_database_bytes [1-9]\d*$/m)
      expect(text).toMatch(/^sqlite_wal_bytes \d+$/m)
    }
    expect(text).not.toContain(`/v1/tasks/${id}"`)
    expect(text).toMatch(/^sensor_messages_published_total 1$/m)
    expect(text).toMatch(/^sensor_ws_connections 0$/m)
    expect(text).toMatch(/^sensor_messages_dropped_total 0$/m)
    expect(text).toMatch(/^predictions_total\{model="seed-linear"\} 2$/m)
    expect(text).toMatch(/^prediction_batch_rows_count\{model="seed-linear"\} 1$/m)
  })
})

describe('hardening', () => {
  test('security headers on every response', async () => {
    await using t = await testApp()
    for (const path of ['/healthz', '/v1/tasks', '/nowhere']) {
      const response = await t.request(path)
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
      expect(response.headers.get('referrer-policy')).toBe('no-referrer')
    }
  })

  test('an overlong URL is 414', async () => {
    await using t = await testApp()
    const response = await t.request(`/v1/tasks?q=${'x'.repeat(9000)}`)
    expect(response.status).toBe(414)
    await problemOf(response)
  })

  test('CORS: no headers by default; an allowlisted origin gets them, another does not', async () => {
    await using closed = await testApp()
    const preflight = (t: TestApp, origin: string) => t.request('/v1/tasks', {
      method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key,content-type' },
    })
    const none = await preflight(closed, 'https://app.example.com')
    expect(none.headers.get('access-control-allow-origin')).toBeNull()
    await using open = await testApp({ CORS_ORIGINS: 'https://app.example.com' })
    const allowed = await preflight(open, 'https://app.example.com')
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(allowed.headers.get('access-control-allow-headers')).toContain('x-api-key')
    const other = await preflight(open, 'https://evil.example.net')
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
    const key = await open.key()
    const simple = await open.request('/v1/tasks', { key, headers: { origin: 'https://app.example.com' } })
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(simple.headers.get('access-control-expose-headers')).toContain('etag')
  })
})
