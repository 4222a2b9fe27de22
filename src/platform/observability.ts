// Prometheus metrics (prom-client) and one structured access-log line per request. What every
// request adds is kept in plain numbers (tallies.ts) that the registry reads at scrape time.
import { Elysia, t } from 'elysia'
// prom-client's parts, not its index: the index also loads its Pushgateway (node's http and https
// clients), about 8 MB of resident memory the service never uses.
import Counter from 'prom-client/lib/counter'
import Gauge from 'prom-client/lib/gauge'
import Registry from 'prom-client/lib/registry'
import { accessLog, type Logger } from './logger'
import { processMetrics } from './process-metrics'
import { readThrough, type Series, Tallies } from './tallies'

// prom-client's defaults (process-metrics.ts) include these sums of the per-type gauges of the same name without
// `_total`; a gauge must not end in `_total` (that suffix names a counter), so they are left out.
const misnamedDefaults = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export class Telemetry {
  readonly registry = new Registry()
  /** http_request_duration_seconds and http_requests_total, by method, route template and status. */
  readonly requests = new Tallies(this.registry, {
    name: 'http_request_duration_seconds', help: 'HTTP request latency by route template and status',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    total: { name: 'http_requests_total', help: 'HTTP requests by route template and status', of: 'count' },
  })
  /** Requests being handled. */
  inFlight = 0
  readonly rateLimited = new Counter({
    name: 'http_rate_limited_total', help: 'Requests refused with 429 by scope group',
    labelNames: ['group'] as const, registers: [this.registry],
  })

  constructor() {
    processMetrics(this.registry, (name, help, read) => this.total(name, help, read))
    for (const name of misnamedDefaults) this.registry.removeSingleMetric(name)
    this.gauge('http_requests_in_flight', 'HTTP requests being handled', () => this.inFlight)
  }

  /** A gauge whose value is read from `read()` at scrape time (for counters kept by features). */
  gauge(name: string, help: string, read: () => number): void {
    if (name.endsWith('_total')) throw new Error(`${name}: the _total suffix names a counter; use total()`)
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()) } })
  }

  /** A counter (`name` ends in `_total`) whose running total is kept elsewhere and read at scrape time. */
  total(name: string, help: string, read: () => number): void {
    if (!name.endsWith('_total')) throw new Error(`${name}: a counter's name ends in _total`)
    this.registry.registerMetric(readThrough(name, help, 'counter', () => [{ value: read(), labels: {} }]))
  }
}

// When the request began, kept on the Request itself. Hooks destructure what they read, so Elysia
// still knows which parts of the context (cookies, query, …) no hook needs.
const begun = Symbol('begun')
type Timed = Request & { [begun]?: number }

/** What every request leaves behind: the in-flight gauge, its tallies by route and status, its access line. */
export class RequestRecorder {
  private readonly access
  private readonly routes = new Map<string, RouteRecorder>()

  constructor(private readonly telemetry: Telemetry, log: Logger, private readonly keyIdOf: (request: Request) => string | undefined) {
    this.access = accessLog(log)
  }

  begin(request: Request): void {
    (request as Timed)[begun] = this.start()
  }

  /** Counts a request in flight; returns when it began, for its route recorder. */
  start(): number {
    this.telemetry.inFlight++
    return performance.now()
  }

  finish(request: Request, route: string, status: number, path: string, requestId: string | undefined): void {
    const started = (request as Timed)[begun]
    if (started === undefined) return
    const key = `${request.method} ${route}`
    let recorder = this.routes.get(key)
    if (!recorder) this.routes.set(key, (recorder = this.route(request.method, route)))
    recorder.record(started, status, path, requestId, this.keyIdOf(request))
  }

  /**
   * The recorder of one method and route template, for a caller that keeps it (the lean lane): its
   * series are found by status alone, and the caller passes when the request began and its key id.
   */
  route(method: string, route: string): RouteRecorder {
    const template = route || 'unmatched'
    const { telemetry, access } = this
    const byStatus = new Map<number, Series>()
    return {
      record(started, status, path, requestId, keyId) {
        const seconds = (performance.now() - started) / 1000
        telemetry.inFlight--
        let series = byStatus.get(status)
        if (!series) {
          series = telemetry.requests.of(`${method} ${template} ${status}`, () => ({ method, route: template, status: String(status) }))
          byStatus.set(status, series)
        }
        telemetry.requests.observe(series, seconds)
        access?.(requestId, method, template, path, status, seconds * 1000, keyId)
      },
    }
  }
}

/** Records one finished request of its route: `started` is the performance.now() of its begin (which counted it in flight). */
export interface RouteRecorder {
  record(started: number, status: number, path: string, requestId: string | undefined, keyId: string | undefined): void
}

export function observability(telemetry: Telemetry, recorder: RequestRecorder) {
  return new Elysia({ name: 'platform/observability' })
    .onRequest(({ request }) => recorder.begin(request))
    .onAfterResponse({ as: 'global' }, ({ request, route, set, path }) => {
      recorder.finish(request, route, typeof set.status === 'number' ? set.status : 200, path, set.headers['x-request-id'] as string | undefined)
    })
    .get('/metrics', async ({ set }) => {
      set.headers['content-type'] = telemetry.registry.contentType
      return telemetry.registry.metrics()
    }, {
      response: { 200: t.String({ description: 'Prometheus text exposition format 0.0.4' }) },
      detail: { summary: 'Prometheus metrics', tags: ['operations'] },
    })
}
