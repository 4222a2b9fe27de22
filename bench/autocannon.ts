// The default load generator: autocannon in this process, one client per request plan, with a
// latency histogram of its own (autocannon's rounds to whole milliseconds).
import autocannon from 'autocannon'
import type { RunOptions } from './generators.ts'
import { LatencyHistogram } from './histogram.ts'
import { countUnexpected, type GeneratorResult, type PlannedRequest } from './scenarios.ts'

function headerValue(headers: Record<string, unknown>, name: string): string | undefined {
  for (const key in headers) {
    if (key.toLowerCase() === name) {
      const value = headers[key]
      return Array.isArray(value) ? String(value[0]) : typeof value === 'string' ? value : undefined
    }
  }
  return undefined
}

type AutocannonRequest = {
  method: string
  path: string
  headers: Record<string, string>
  body?: string
  setupRequest?: (request: AutocannonRequest, context: unknown) => AutocannonRequest
  onResponse?: (status: number, body: string, context: unknown, headers: Record<string, unknown>) => void
}

function toAutocannon(request: PlannedRequest, etags: Map<string, string>): AutocannonRequest {
  const base: AutocannonRequest = { method: request.method, path: request.path, headers: request.headers }
  if (request.body !== undefined) base.body = request.body
  if (!request.conditional) return base
  const { bodies } = request.conditional
  const path = request.path
  let turn = 0
  return {
    ...base,
    // Rebuilt before every send of this request: the latest ETag this connection saw.
    setupRequest: (built) => ({
      ...built,
      headers: { ...built.headers, 'If-Match': etags.get(path) ?? '*' },
      body: bodies[turn++ % bodies.length]!,
    }),
    onResponse: (status, _body, _context, headers) => {
      if (status !== 200) return
      const etag = headerValue(headers, 'etag')
      if (etag) etags.set(path, etag)
    },
  }
}

export async function runAutocannon(options: RunOptions): Promise<GeneratorResult> {
  let client = 0
  const cpuBefore = process.cpuUsage()
  let abort = () => {}
  const latency = new LatencyHistogram()
  let result: autocannon.Result
  try {
    result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon({
        url: options.url,
        connections: options.connections,
        duration: options.durationSec,
        timeout: 10,
        setupClient(c: autocannon.Client) {
          const plan = options.plans[client++ % options.plans.length]!
          c.setRequests(plan.map((request) => toAutocannon(request, options.etags)) as unknown as autocannon.Request[])
        },
      }, (error, done) => (error ? reject(error) : resolve(done)))
      // Our own histogram: autocannon's rounds latencies to whole milliseconds.
      instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) latency.record(ms)
      })
      abort = () => instance.stop()
      options.signal.addEventListener('abort', abort, { once: true })
    })
  } finally {
    options.signal.removeEventListener('abort', abort)
  }
  const cpu = process.cpuUsage(cpuBefore)
  const statuses: Record<string, number> = {}
  for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {}) as Array<[string, { count: number }]>) {
    statuses[status] = Number(count)
  }
  const responses = Object.values(statuses).reduce((a, b) => a + b, 0)
  const ok = Object.entries(statuses).reduce((sum, [status, count]) => sum + (status.startsWith('2') ? count : 0), 0)
  return {
    requests: responses,
    durationSec: result.duration,
    rps: responses / result.duration,
    p50: latency.percentile(50),
    p99: latency.percentile(99),
    errors: result.errors,
    non2xx: result.non2xx,
    unexpected: countUnexpected(statuses, options.expect),
    statuses,
    bytesPerResponse: ok > 0 ? result.throughput.total / ok : Number.NaN,
    generatorCpuSec: (cpu.user + cpu.system) / 1e6,
  }
}
