// Prometheus metrics (prom-client) and one structured access-log line per request.
import { Elysia, t } from 'elysia'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { accessLog, type Logger } from './logger'

export class Telemetry {
  readonly registry = new Registry()
  readonly requests = new Counter({
    name: 'http_requests_total', help: 'HTTP requests by route template and status',
    labelNames: ['method', 'route', 'status'] as const, registers: [this.registry],
  })
  readonly duration = new Histogram({
    name: 'http_request_duration_seconds', help: 'HTTP request latency by route template and status',
    labelNames: ['method', 'route', 'status'] as const, registers: [this.registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  })
  readonly inFlight = new Gauge({ name: 'http_requests_in_flight', help: 'HTTP requests being handled', registers: [this.registry] })
  readonly rateLimited = new Counter({
    name: 'http_rate_limited_total', help: 'Requests refused with 429 by scope group',
    labelNames: ['group'] as const, registers: [this.registry],
  })

  constructor() {
    collectDefaultMetrics({ register: this.registry })
  }

  /** A gauge whose value is read from `read()` at scrape time (for counters kept by features). */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()) } })
  }

  /** A counter-like metric whose running total is kept elsewhere and read at scrape time. */
  total(name: string, help: string, read: () => number): void {
    // prom-client has no read-through counter; a gauge named *_total keeps the monotonic value.
    this.gauge(name, help, read)
  }
}

const started = new WeakMap<Request, number>()

export function observability(telemetry: Telemetry, log: Logger, principalKeyId: (request: Request) => string | undefined) {
  const access = accessLog(log)
  return new Elysia({ name: 'platform/observability' })
    .onRequest(({ request }) => {
      started.set(request, performance.now())
      telemetry.inFlight.inc()
    })
    .onAfterResponse({ as: 'global' }, ({ request, route, set, path }) => {
      const begun = started.get(request)
      if (begun === undefined) return
      const seconds = (performance.now() - begun) / 1000
      const status = typeof set.status === 'number' ? set.status : 200
      const template = route || 'unmatched'
      telemetry.inFlight.dec()
      const labels = { method: request.method, route: template, status: String(status) }
      telemetry.requests.inc(labels)
      telemetry.duration.observe(labels, seconds)
      access?.({
        requestId: set.headers['x-request-id'] as string | undefined, method: request.method, route: template, path,
        status, durationMs: Math.round(seconds * 1e5) / 100, keyId: principalKeyId(request),
      })
    })
    .get('/metrics', async ({ set }) => {
      set.headers['content-type'] = telemetry.registry.contentType
      return telemetry.registry.metrics()
    }, {
      response: { 200: t.String({ description: 'Prometheus text exposition format 0.0.4' }) },
      detail: { summary: 'Prometheus metrics', tags: ['operations'] },
    })
}
