// /metrics as Prometheus' own linter reads it: counters are exposed as counters, and no other
// metric takes a counter's `_total` suffix.
import { describe, expect, test } from 'bun:test'
import { Telemetry } from '../src/platform/observability'
import { eventually } from './eventually'
import { testApp, type TestApp } from './helpers'

const promtool = Bun.which('promtool')
if (!promtool && process.env.CI !== 'true') {
  console.warn('\n⚠ test/hardening-metrics.test.ts: promtool is missing, so its lint is SKIPPED (apt-get install prometheus). CI installs it and runs it.\n')
}

/** A scrape after traffic that gives every kind of metric a series: requests, a 429, a reading, a prediction. */
async function scrapeAfterTraffic(t: TestApp): Promise<string> {
  const key = await t.key()
  expect((await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'metrics' } })).status).toBe(201)
  expect((await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'metrics' } })).status).toBe(429)
  expect((await t.request('/v1/sensors/m1/readings', { method: 'POST', key, json: { celsius: 21.5 } })).status).toBe(202)
  expect((await t.request('/v1/models/seed-linear/predict', { method: 'POST', key, json: { instances: [[1, 2, 3]] } })).status).toBe(200)
  // Requests are recorded after each response is sent: wait until only the scrape itself is in flight.
  return eventually(async () => {
    const text = await (await t.request('/metrics')).text()
    return /^http_requests_in_flight 1$/m.test(text) && text
  }, { what: 'only the scrape is in flight', timeoutMs: 1000, intervalMs: 1 })
}

/** Each metric's name and `# TYPE`. */
const typesOf = (text: string) => Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name!, type!]))

describe('metric types', () => {
  test('every *_total is a counter, the service\'s own totals among them', async () => {
    await using t = await testApp({ RATE_LIMIT_TASKS: '1/1' })
    const types = typesOf(await scrapeAfterTraffic(t))
    const totals = Object.entries(types).filter(([name]) => name.endsWith('_total'))
    expect(totals.filter(([, type]) => type !== 'counter')).toEqual([])
    for (const name of [
      'http_requests_total', 'http_rate_limited_total', 'predictions_total', 'sensor_messages_published_total',
      'sensor_messages_dropped_total', 'sensor_slow_consumer_closes_total', 'sensor_messages_rate_limited_total',
    ]) expect(types[name]).toBe('counter')
    // prom-client's sums of the per-type gauges are left out; the per-type gauges stay.
    expect(types).toMatchObject({ nodejs_active_handles: 'gauge', nodejs_active_requests: 'gauge', nodejs_active_resources: 'gauge' })
    expect(Object.keys(types).filter((name) => name.startsWith('nodejs_active_') && name.endsWith('_total'))).toEqual([])
  })

  test('a counter read at scrape time shows the running total', async () => {
    await using t = await testApp()
    const key = await t.key()
    for (const celsius of [20, 21]) expect((await t.request('/v1/sensors/m2/readings', { method: 'POST', key, json: { celsius } })).status).toBe(202)
    const text = await (await t.request('/metrics')).text()
    expect(text).toMatch(/^# TYPE sensor_messages_published_total counter\nsensor_messages_published_total 2$/m)
  })
})

describe('promtool', () => {
  test.skipIf(!promtool && process.env.CI !== 'true')('`promtool check metrics` finds nothing to report in /metrics', async () => {
    expect(promtool, 'promtool (Debian package prometheus) must be installed in CI').toBeTruthy()
    await using t = await testApp({ RATE_LIMIT_TASKS: '1/1' })
    const text = await scrapeAfterTraffic(t)
    const proc = Bun.spawn([promtool!, 'check', 'metrics'], { stdin: new Blob([text]), stdout: 'pipe', stderr: 'pipe' })
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    expect({ code, report: out + err }).toEqual({ code: 0, report: '' })
  })
})

describe('metric names', () => {
  test('a gauge named *_total, or a counter without the suffix, is refused at start', () => {
    const telemetry = new Telemetry()
    expect(() => telemetry.gauge('things_total', 'Things', () => 1)).toThrow('use total()')
    expect(() => telemetry.total('things', 'Things', () => 1)).toThrow('ends in _total')
  })
})
