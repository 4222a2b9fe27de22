// Load generators: autocannon in this process (default) and wrk as a child (optional,
// `--generator wrk`). Both take the same per-connection request plans and return the
// same GeneratorResult, with the generator's own CPU time.
import autocannon from 'autocannon'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LatencyHistogram } from './histogram.ts'
import { pinned, track } from './processes.ts'
import type { GeneratorResult, PlannedRequest } from './scenarios.ts'

export type GeneratorName = 'autocannon' | 'wrk'

export interface RunOptions {
  url: string
  /**
   * One request list per connection; connection i loops over plans[i]. Plans beyond
   * `connections` are spares: wrk adds their conditional resources to its pool.
   */
  plans: PlannedRequest[][]
  connections: number
  durationSec: number
  expect: number[]
  /** Current ETag per conditional path; read before and updated during the run. */
  etags: Map<string, string>
  signal: AbortSignal
  /** Core for a generator child process (wrk), or null. */
  core: number | null
}

function countUnexpected(statuses: Record<string, number>, expect: number[]): number {
  return Object.entries(statuses).reduce((sum, [status, count]) => sum + (expect.includes(Number(status)) ? 0 : count), 0)
}

function headerValue(headers: Record<string, unknown>, name: string): string | undefined {
  for (const key in headers) {
    if (key.toLowerCase() === name) {
      const value = headers[key]
      return Array.isArray(value) ? String(value[0]) : typeof value === 'string' ? value : undefined
    }
  }
  return undefined
}

// --- autocannon -------------------------------------------------------------

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

// --- wrk --------------------------------------------------------------------

export const wrkPath = Bun.which('wrk')

function lua(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`
}

/**
 * wrk has no per-connection state in Lua, so the plans are interleaved into one sequence;
 * plain requests are formatted once in init(); conditional writes take a resource from a
 * pool (one per connection, so it never runs dry) and put it back, with the ETag of the
 * response, when its 200 arrives — the ETag `"id.version"` names the resource.
 */
export function wrkScript(plans: PlannedRequest[][], connections: number, etags: Map<string, string>): string {
  const pool = new Map<string, { key: string; etag: string }>()
  const used = Array.from({ length: connections }, (_, i) => plans[i % plans.length]!)
  // wrk calls request() once more than it sends (one spare resource is lost at start), so the
  // pool gets the conditional resources of the spare plans too and never runs dry.
  for (const plan of plans.slice(connections)) {
    for (const request of plan) if (request.conditional) pool.set(request.path, { key: request.headers['X-API-Key'] ?? '', etag: etags.get(request.path) ?? '*' })
  }
  const keys: string[] = []
  const keyIndex = (key: string) => {
    let i = keys.indexOf(key)
    if (i === -1) i = keys.push(key) - 1
    return i + 1
  }
  const bodies: string[] = []
  const bodyIndex = (body: string | undefined) => {
    if (body === undefined) return 0
    let i = bodies.indexOf(body)
    if (i === -1) i = bodies.push(body) - 1
    return i + 1
  }
  const sequence: string[] = []
  let conditionalBodies: string[] = []
  const longest = Math.max(...used.map((plan) => plan.length))
  for (let step = 0; step < longest; step++) {
    for (const plan of used) {
      const request = plan[step % plan.length]!
      const key = request.headers['X-API-Key'] ?? ''
      if (request.conditional) {
        conditionalBodies = request.conditional.bodies
        pool.set(request.path, { key, etag: etags.get(request.path) ?? '*' })
        sequence.push('false')
      } else {
        sequence.push(`{${lua(request.method)},${lua(request.path)},${keyIndex(key)},${bodyIndex(request.body)}}`)
      }
    }
  }
  const poolEntries = [...pool].map(([path, { key, etag }]) => `{${lua(path)},${keyIndex(key)},${lua(etag)}}`)
  const fallback = used.flat().find((request) => !request.conditional)
  const lines = [
    '-- generated by bench/generators.ts',
    `local keys = {${keys.map(lua).join(',')}}`,
    `local bodies = {${bodies.map(lua).join(',')}}`,
    `local plan = {${sequence.join(',')}}`,
    `local pool = {${poolEntries.join(',')}}`,
    `local condBodies = {${conditionalBodies.map(lua).join(',')}}`,
    'local prebuilt = {}',
    'local n = #plan',
    'local i = 0',
    'local turn = 0',
    'local inflight = {}',
    'local fallback = nil',
    'statuses = {}',
    'fallbacks = 0',
    '',
    'function init(args)',
    '  for j = 1, n do',
    '    local e = plan[j]',
    '    if e then',
    '      local h = { ["X-API-Key"] = keys[e[3]] }',
    '      local body = nil',
    '      if e[4] > 0 then h["Content-Type"] = "application/json"; body = bodies[e[4]] end',
    '      prebuilt[j] = wrk.format(e[1], e[2], h, body)',
    '    end',
    '  end',
    fallback
      ? `  fallback = wrk.format(${lua(fallback.method)}, ${lua(fallback.path)}, { ["X-API-Key"] = ${lua(fallback.headers['X-API-Key'] ?? '')} })`
      : '  fallback = wrk.format("GET", "/v1/tasks?limit=20", { ["X-API-Key"] = keys[1] })',
    'end',
    '',
    'function request()',
    '  i = i + 1',
    '  if i > n then i = 1 end',
    '  local r = prebuilt[i]',
    '  if r then return r end',
    '  local c = table.remove(pool)',
    '  if c == nil then fallbacks = fallbacks + 1; return fallback end',
    '  inflight[string.match(c[1], "(%d+)$")] = c',
    '  turn = turn + 1',
    '  return wrk.format("PATCH", c[1], { ["X-API-Key"] = keys[c[2]], ["Content-Type"] = "application/json", ["If-Match"] = c[3] }, condBodies[turn % #condBodies + 1])',
    'end',
  ]
  if (pool.size > 0) {
    // Only defined when needed: a response() callback costs wrk time on every response.
    lines.push(
      '',
      'function response(status, headers, body)',
      '  statuses[status] = (statuses[status] or 0) + 1',
      '  if status ~= 200 then return end',
      '  local e = headers["ETag"] or headers["etag"] or headers["Etag"]',
      '  if e == nil then return end',
      '  local id = string.match(e, "^\\"(%d+)%.")',
      '  local c = id and inflight[id]',
      '  if c then inflight[id] = nil; c[3] = e; table.insert(pool, c) end',
      'end',
    )
  }
  lines.push(
    '',
    'local threads = {}',
    'function setup(thread) table.insert(threads, thread) end',
    '',
    'function done(summary, latency, requests)',
    '  for _, t in ipairs(threads) do',
    '    local s = t:get("statuses")',
    '    if s then for k, v in pairs(s) do io.write(string.format("BENCH_STATUS %d %d\\n", k, v)) end end',
    '    io.write(string.format("BENCH_FALLBACK %d\\n", t:get("fallbacks") or 0))',
    '  end',
    '  local e = summary.errors',
    '  io.write(string.format("BENCH_SUMMARY %d %d %d %d %d %d %d %d\\n", summary.duration, summary.requests, summary.bytes,',
    '    e.connect, e.read, e.write, e.status, e.timeout))',
    '  io.write(string.format("BENCH_LATENCY %d %d\\n", latency:percentile(50), latency:percentile(99)))',
    'end',
  )
  return lines.join('\n') + '\n'
}

/** One wrk run. The ETags it learns stay inside wrk, so callers refresh `etags` before every run. */
export async function runWrk(options: RunOptions): Promise<GeneratorResult> {
  if (!wrkPath) throw new Error('wrk is not installed (Debian: apt-get install wrk); use --generator autocannon')
  const dir = mkdtempSync(join(tmpdir(), 'taskmesh-wrk-'))
  try {
    const script = join(dir, 'plan.lua')
    writeFileSync(script, wrkScript(options.plans, options.connections, options.etags))
    const seconds = Math.max(1, Math.round(options.durationSec))
    const argv = pinned([wrkPath, '-t1', `-c${options.connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, `${options.url}/`], options.core)
    const child = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe' })
    track(child)
    const abort = () => child.kill('SIGINT')
    options.signal.addEventListener('abort', abort, { once: true })
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    options.signal.removeEventListener('abort', abort)
    const usage = child.resourceUsage()
    if (code !== 0) throw new Error(`wrk exited with ${code}: ${stderr.trim() || stdout.trim()}`)
    const summary = /BENCH_SUMMARY (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(stdout)
    const latency = /BENCH_LATENCY (\d+) (\d+)/.exec(stdout)
    if (!summary || !latency) throw new Error(`could not parse wrk output:\n${stdout}\n${stderr}`)
    const [durationUs, requests, bytes, connect, read, write, status, timeout] = summary.slice(1).map(Number) as number[]
    const statuses: Record<string, number> = {}
    for (const match of stdout.matchAll(/BENCH_STATUS (\d+) (\d+)/g)) statuses[match[1]!] = Number(match[2])
    // Requests sent instead of a conditional write because no resource was free: the plan was not followed.
    const fallbacks = [...stdout.matchAll(/BENCH_FALLBACK (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0)
    const known = Object.keys(statuses).length > 0
    const durationSec = durationUs! / 1e6
    return {
      requests: requests!,
      durationSec,
      rps: requests! / durationSec,
      p50: Number(latency[1]) / 1000,
      p99: Number(latency[2]) / 1000,
      errors: connect! + read! + write! + timeout!,
      // wrk counts status ≥ 400 ("Non-2xx or 3xx"); exact statuses only when the script tracks them.
      non2xx: known ? countUnexpected(statuses, [200, 201, 202, 203, 204, 205, 206]) : status!,
      unexpected: (known ? countUnexpected(statuses, options.expect) : status!) + fallbacks,
      statuses: fallbacks > 0 ? { ...statuses, 'fallback (no free conditional resource)': fallbacks } : statuses,
      bytesPerResponse: requests! > 0 ? bytes! / requests! : Number.NaN,
      generatorCpuSec: usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1e6 : Number.NaN,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export function runGenerator(name: GeneratorName, options: RunOptions): Promise<GeneratorResult> {
  return name === 'wrk' ? runWrk(options) : runAutocannon(options)
}
