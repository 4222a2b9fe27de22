// Sensor fan-out: N WebSocket subscribers on one topic, a publisher at a fixed rate and
// at full speed, against the service and against a bare Bun.serve pub/sub relay in the
// same run. Reports delivered messages/s and publish-to-receive latency (p50/p99).
//
//   bun bench/fanout.ts [--subscribers 100,1000] [--duration 5] [--rate 200] [--window 64] [--via ws|http] [--json] [--cpu-prof DIR]
//
// Processes: the server pinned to core 0 (taskset), the subscriber processes and this one
// (the publisher) on core 1. Both targets get the same publisher: `{"op":"publish"}` on one
// socket (default; RATE_LIMIT=off lifts the service's per-connection message limit too), or
// with --via http, POST /v1/sensors/{id}/readings over keep-alive HTTP.
// The same file is the relay (`--role relay`) and a subscriber process (`--role clients`).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cores, cpuSeconds, hasTaskset, pin, pinned, type Server, startServer, stopAll, track } from './processes.ts'

const root = resolve(import.meta.dir, '..')
const TOPIC_ID = 'bench'
const TOPIC = `sensors/${TOPIC_ID}`
/** Sockets one subscriber process opens at most. */
const PER_PROCESS = 500
const SAMPLES_PER_PROCESS = 50_000

const now = () => performance.timeOrigin + performance.now()

// --- the bare relay: what Bun alone does for the same protocol ----------------------------

function runRelay(): void {
  let seq = 0
  const server = Bun.serve({
    port: Number(process.env.PORT ?? 0),
    hostname: process.env.HOST ?? '127.0.0.1',
    async fetch(request, server) {
      if (server.upgrade(request, { data: undefined })) return
      const url = new URL(request.url)
      const match = /^\/v1\/sensors\/([A-Za-z0-9_.-]{1,64})\/readings$/.exec(url.pathname)
      if (request.method === 'POST' && match) {
        const topic = `sensors/${match[1]}`
        const body = await request.text()
        seq++
        server.publish(topic, `{"topic":"${topic}","seq":${seq},"ts":"${new Date().toISOString()}","data":${body}}`, false)
        return Response.json({ topic, seq }, { status: 202 })
      }
      return new Response('not found', { status: 404 })
    },
    websocket: {
      message(ws, message) {
        const parsed = JSON.parse(String(message)) as { op: string; topic: string; data: unknown }
        if (parsed.op === 'publish') {
          seq++
          server.publish(parsed.topic, `{"topic":"${parsed.topic}","seq":${seq},"ts":"${new Date().toISOString()}","data":${JSON.stringify(parsed.data)}}`, false)
        } else if (parsed.op === 'subscribe') {
          ws.subscribe(parsed.topic)
          ws.send(JSON.stringify({ op: 'subscribed', topic: parsed.topic, epoch: 'relay', recovered: true }))
        }
      },
    },
  })
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.port}`, msg: 'listening' }))
}

// --- a subscriber process -------------------------------------------------------------------

interface ClientReport {
  received: number
  /** Epoch ms of the last reading received. */
  lastAt: number
  samples: number[]
  closes: Record<string, number>
}

async function runClients(): Promise<void> {
  const url = process.env.FANOUT_URL!
  const key = process.env.FANOUT_KEY
  const count = Number(process.env.FANOUT_COUNT)
  let received = 0
  let seen = 0
  let lastAt = 0
  let samples = new Float64Array(SAMPLES_PER_PROCESS)
  const closes: Record<string, number> = {}
  /** Readings each socket received: the slowest one is what the publisher paces itself by. */
  const perSocket = new Float64Array(count)
  let opened = 0
  const onMessage = (event: MessageEvent) => {
    const text = event.data as string
    // Readings end with "data":{"t":<publish time>}}; the subscribed ack has no "t".
    const at = text.lastIndexOf('"t":')
    if (at === -1) return
    const t = Number.parseFloat(text.slice(at + 4))
    const arrived = now()
    received++
    seen++
    lastAt = arrived
    // Reservoir sampling keeps a uniform sample of every latency seen.
    if (seen <= SAMPLES_PER_PROCESS) samples[seen - 1] = arrived - t
    else {
      const slot = Math.floor(Math.random() * seen)
      if (slot < SAMPLES_PER_PROCESS) samples[slot] = arrived - t
    }
  }
  const open = () => new Promise<void>((resolveOpen, reject) => {
    const index = opened++
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/sensors/ws`, key ? { headers: { 'x-api-key': key } } : undefined)
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic: TOPIC }))
    ws.onerror = () => reject(new Error('socket error'))
    ws.onclose = (event) => {
      closes[event.code] = (closes[event.code] ?? 0) + 1
    }
    ws.onmessage = (event) => {
      if (String(event.data).includes('"op":"subscribed"')) {
        ws.onmessage = (message) => {
          perSocket[index]!++
          onMessage(message)
        }
        resolveOpen()
      }
    }
  })
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, open))
  console.log(JSON.stringify({ ready: true }))
  // Progress for the full-speed publisher: the count of the slowest socket, whenever it moves.
  let lastMin = -1
  setInterval(() => {
    let min = Infinity
    for (const n of perSocket) if (n < min) min = n
    if (min !== lastMin) {
      lastMin = min
      console.log(JSON.stringify({ min }))
    }
  }, 2)
  const decoder = new TextDecoder()
  for await (const chunk of Bun.stdin.stream()) {
    for (const command of decoder.decode(chunk).split('\n').filter(Boolean)) {
      if (command === 'reset') {
        received = 0
        seen = 0
        lastAt = 0
        samples = new Float64Array(SAMPLES_PER_PROCESS)
        perSocket.fill(0)
        lastMin = 0
        console.log(JSON.stringify({ reset: true }))
      } else if (command === 'count') {
        console.log(JSON.stringify({ received }))
      } else if (command === 'report') {
        const report: ClientReport = { received, lastAt, samples: [...samples.subarray(0, Math.min(seen, SAMPLES_PER_PROCESS))], closes }
        console.log(JSON.stringify(report))
        process.exit(0)
      }
    }
  }
}

/** A subscriber process driven over stdin/stdout, one JSON line per answer. */
class Clients {
  private lines: string[] = []
  private waiters: Array<() => void> = []
  /** Readings received by this process's slowest socket. */
  min = 0
  onProgress: () => void = () => {}
  private constructor(readonly child: Bun.Subprocess<'pipe', 'pipe', 'inherit'>) {
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      for await (const chunk of child.stdout) {
        buffer += decoder.decode(chunk, { stream: true })
        let newline: number
        while ((newline = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (line.startsWith('{"min":')) {
            this.min = (JSON.parse(line) as { min: number }).min
            this.onProgress()
            continue
          }
          this.lines.push(line)
          for (const wake of this.waiters.splice(0)) wake()
        }
      }
      for (const wake of this.waiters.splice(0)) wake()
    })()
  }

  static async start(url: string, key: string | undefined, count: number, core: number | null): Promise<Clients> {
    const child = Bun.spawn(pinned([process.execPath, import.meta.path, '--role', 'clients'], core), {
      cwd: root,
      env: { ...process.env, FANOUT_URL: url, FANOUT_KEY: key ?? '', FANOUT_COUNT: String(count) },
      stdin: 'pipe', stdout: 'pipe', stderr: 'inherit',
    })
    track(child)
    const clients = new Clients(child)
    await clients.line()
    return clients
  }

  async line(): Promise<Record<string, unknown>> {
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null) throw new Error(`subscriber process exited with ${this.child.exitCode}`)
      const { promise, resolve: wake } = Promise.withResolvers<void>()
      this.waiters.push(wake)
      await promise
    }
    return JSON.parse(this.lines.shift()!) as Record<string, unknown>
  }

  async ask<T>(command: string): Promise<T> {
    this.child.stdin.write(`${command}\n`)
    this.child.stdin.flush()
    return (await this.line()) as T
  }
}

// --- the publisher and one measurement ------------------------------------------------------------

export interface FanoutOptions {
  subscribers: number[]
  durationSec: number
  /** Publishes per second in the fixed-rate runs. */
  rate: number
  /** Full speed: readings published and not yet received by the publisher's own subscriber, at most. */
  window: number
  /** How the publisher sends: `{"op":"publish"}` on one socket, or POST /v1/sensors/{id}/readings. */
  via: 'ws' | 'http'
  /** Write a CPU profile of the service (bun --cpu-prof) into this folder. */
  cpuProfDir?: string
  log?: (line: string) => void
}

export interface FanoutMeasurement {
  target: 'service' | 'relay'
  subscribers: number
  mode: 'fixed' | 'full'
  published: number
  /** Readings received over all subscribers. */
  delivered: number
  /** delivered ÷ (published × subscribers): 1 when nothing was lost. */
  completeness: number
  deliveredPerSec: number
  publishedPerSec: number
  /** Milliseconds, publish (before the POST) to receipt. */
  p50: number
  p99: number
  serverCpu: number
  /** Close codes the subscribers saw during the run (none expected). */
  closes: Record<string, number>
}

export interface FanoutResult {
  date: string
  bun: string
  cores: number
  pinned: boolean
  options: Omit<FanoutOptions, 'log'>
  runs: FanoutMeasurement[]
  /** service ÷ relay delivered/s for each subscriber count and mode. */
  ratios: Array<{ subscribers: number; mode: 'fixed' | 'full'; ratio: number }>
}

/** One publisher connection: `post()` resolves when the reading was handed over (HTTP: answered 202). */
async function publisher(url: string, key: string | undefined, via: 'ws' | 'http') {
  let failed = 0
  if (via === 'http') {
    const endpoint = `${url}/v1/sensors/${TOPIC_ID}/readings`
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) }
    return {
      failed: () => failed,
      async post(): Promise<boolean> {
        const response = await fetch(endpoint, { method: 'POST', headers, body: `{"t":${now()}}` })
        await response.arrayBuffer()
        if (response.status === 202) return true
        failed++
        return false
      },
      close() {},
    }
  }
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/sensors/ws`, key ? { headers: { 'x-api-key': key } } : undefined)
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = () => reject(new Error('publisher socket error'))
  })
  // Errors (rate_limited, bad_data) would come back as messages; none are expected.
  ws.onmessage = (event) => {
    if (failed++ === 0) console.error(`publisher: ${String(event.data)}`)
  }
  return {
    failed: () => failed,
    async post(): Promise<boolean> {
      ws.send(`{"op":"publish","topic":"${TOPIC}","data":{"t":${now()}}}`)
      return true
    },
    close: () => ws.close(),
  }
}

async function publishFor(url: string, key: string | undefined, via: 'ws' | 'http', mode: 'fixed' | 'full', durationSec: number, rate: number, window: number, groups: Clients[]): Promise<{ published: number; startedAt: number }> {
  const connection = await publisher(url, key, via)
  let published = 0
  const post = async () => {
    if (await connection.post()) published++
  }
  const startedAt = now()
  const endAt = performance.now() + durationSec * 1000
  if (mode === 'full') {
    // Closed loop: as fast as the slowest subscriber takes readings, so neither target can
    // run ahead by queueing (a relay would otherwise buffer megabytes per socket and count
    // that as speed).
    const slowest = () => Math.min(...groups.map((g) => g.min))
    let inFlight = 0
    await new Promise<void>((done) => {
      const pump = () => {
        while (performance.now() < endAt && inFlight < window && published + inFlight - slowest() < window) {
          inFlight++
          void post().finally(() => {
            inFlight--
            pump()
          })
        }
        if (performance.now() >= endAt && inFlight === 0) done()
      }
      for (const g of groups) g.onProgress = pump
      setTimeout(pump, durationSec * 1000 + 1)
      pump()
    })
    for (const g of groups) g.onProgress = () => {}
  } else {
    const inFlight = new Set<Promise<void>>()
    const begin = performance.now()
    for (let i = 0; ; i++) {
      const due = begin + (i * 1000) / rate
      if (due >= endAt) break
      const wait = due - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      const request = post().finally(() => inFlight.delete(request))
      inFlight.add(request)
    }
    await Promise.all(inFlight)
  }
  connection.close()
  if (connection.failed() > 0) throw new Error(`${connection.failed()} publishes failed`)
  return { published, startedAt }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Until the subscribers received `expected` readings in all, or nothing more arrives for a second. */
async function drain(groups: Clients[], expected: number): Promise<void> {
  let last = -1
  for (let quiet = 0; quiet < 20;) {
    const counts = await Promise.all(groups.map((g) => g.ask<{ received: number }>('count')))
    const total = counts.reduce((sum, c) => sum + c.received, 0)
    if (total >= expected) return
    quiet = total === last ? quiet + 1 : 0
    last = total
    await Bun.sleep(50)
  }
}

async function measure(target: Server & { key?: string; kind: 'service' | 'relay' }, subscribers: number, mode: 'fixed' | 'full', options: FanoutOptions, clientCore: number | null): Promise<FanoutMeasurement> {
  const processes = Math.ceil(subscribers / PER_PROCESS)
  const groups = await Promise.all(Array.from({ length: processes }, (_, i) =>
    Clients.start(target.url, target.key, Math.min(PER_PROCESS, subscribers - i * PER_PROCESS), clientCore)))
  try {
    // Warm-up: a short burst everyone must receive, then counters from zero.
    const warm = await publishFor(target.url, target.key, options.via, 'fixed', 0.5, options.rate, options.window, groups)
    await drain(groups, warm.published * subscribers)
    await Promise.all(groups.map((g) => g.ask('reset')))
    const cpuBefore = cpuSeconds(target.pid)
    const wallBefore = performance.now()
    const { published, startedAt } = await publishFor(target.url, target.key, options.via, mode, options.durationSec, options.rate, options.window, groups)
    const expected = published * subscribers
    await drain(groups, expected)
    const serverCpu = (cpuSeconds(target.pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000)
    const reports = await Promise.all(groups.map((g) => g.ask<ClientReport>('report')))
    const delivered = reports.reduce((sum, r) => sum + r.received, 0)
    const lastAt = Math.max(...reports.map((r) => r.lastAt))
    const samples = reports.flatMap((r) => r.samples).sort((a, b) => a - b)
    const closes: Record<string, number> = {}
    for (const r of reports) for (const [code, n] of Object.entries(r.closes)) closes[code] = (closes[code] ?? 0) + n
    const seconds = (lastAt - startedAt) / 1000
    return {
      target: target.kind, subscribers, mode, published, delivered,
      completeness: delivered / expected,
      deliveredPerSec: delivered / seconds,
      publishedPerSec: published / options.durationSec,
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      serverCpu,
      closes,
    }
  } finally {
    for (const g of groups) if (g.child.exitCode === null) g.child.kill()
  }
}

async function createKey(databaseUrl: string): Promise<string> {
  const child = Bun.spawn([process.execPath, 'src/cli/keys.ts', 'create', 'fanout-bench', '--scope', 'sensors:read', '--scope', 'sensors:write'], {
    cwd: root, env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }, stdout: 'pipe', stderr: 'pipe',
  })
  const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited])
  if (code !== 0) throw new Error(`keys create failed: ${await new Response(child.stderr).text()}`)
  return stdout.trim().split('\n').at(-1)!
}

/** Runs every subscriber count × mode against the service and the relay (alternating who goes first). */
export async function runFanoutBench(options: FanoutOptions): Promise<FanoutResult> {
  const log = options.log ?? (() => {})
  const canPin = hasTaskset && cores() >= 2
  const serverCore = canPin ? 0 : null
  const clientCore = canPin ? 1 : null
  if (canPin) pin(process.pid, 1)
  const scratch = mkdtempSync(join(tmpdir(), 'taskmesh-fanout-'))
  const databaseUrl = `sqlite:${join(scratch, 'app.sqlite')}`
  try {
    const key = await createKey(databaseUrl)
    const service = Object.assign(await startServer('service', pinned([process.execPath, ...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []), 'src/index.ts'], serverCore), {
      cwd: root,
      // LOG_LEVEL=warn: no access-log line per publish (the relay writes none either).
      env: { HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SIMULATOR: 'off', RATE_LIMIT: 'off', LOG_LEVEL: 'warn', MODELS_DIR: join(scratch, 'models') },
      health: '/healthz',
    }), { key, kind: 'service' as const })
    const relay = Object.assign(await startServer('relay', pinned([process.execPath, import.meta.path, '--role', 'relay'], serverCore), {
      cwd: root, env: { HOST: '127.0.0.1', PORT: '0' },
    }), { kind: 'relay' as const })
    const runs: FanoutMeasurement[] = []
    const ratios: FanoutResult['ratios'] = []
    let step = 0
    for (const subscribers of options.subscribers) {
      for (const mode of ['fixed', 'full'] as const) {
        const order = step++ % 2 === 0 ? [service, relay] : [relay, service]
        const pair: Partial<Record<'service' | 'relay', FanoutMeasurement>> = {}
        for (const target of order) {
          log(`${target.kind} · ${subscribers} subscribers · publish over ${options.via} · ${mode === 'fixed' ? `${options.rate}/s` : `full speed (≤ ${options.window} readings outstanding)`} …`)
          const m = await measure(target, subscribers, mode, options, clientCore)
          pair[target.kind] = m
          runs.push(m)
          log(`  ${Math.round(m.deliveredPerSec).toLocaleString('en-US')} delivered/s (${Math.round(m.publishedPerSec).toLocaleString('en-US')} published/s), `
            + `p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms, complete ${(m.completeness * 100).toFixed(2)}%, server CPU ${Math.round(m.serverCpu * 100)}%`
            + (Object.keys(m.closes).length ? `, closes ${JSON.stringify(m.closes)}` : ''))
        }
        ratios.push({ subscribers, mode, ratio: pair.service!.deliveredPerSec / pair.relay!.deliveredPerSec })
      }
    }
    await service.stop()
    await relay.stop()
    const { log: _, cpuProfDir: __, ...rest } = options
    return { date: new Date().toISOString(), bun: Bun.version, cores: cores(), pinned: canPin, options: rest, runs, ratios }
  } finally {
    await stopAll(2000)
    rmSync(scratch, { recursive: true, force: true })
  }
}

export function table(result: FanoutResult): string {
  const rows = ['| subscribers | publisher | target | published/s | delivered/s | p50 ms | p99 ms | complete | server CPU | service ÷ relay |', '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|']
  for (const run of result.runs) {
    const ratio = run.target === 'service' ? result.ratios.find((r) => r.subscribers === run.subscribers && r.mode === run.mode)?.ratio : undefined
    rows.push(`| ${run.subscribers} | ${run.mode === 'fixed' ? `${result.options.rate}/s` : 'full speed'} | ${run.target} | ${Math.round(run.publishedPerSec).toLocaleString('en-US')} | `
      + `${Math.round(run.deliveredPerSec).toLocaleString('en-US')} | ${run.p50.toFixed(2)} | ${run.p99.toFixed(2)} | ${(run.completeness * 100).toFixed(1)}% | `
      + `${Math.round(run.serverCpu * 100)}% | ${ratio === undefined ? '' : ratio.toFixed(2)} |`)
  }
  return rows.join('\n')
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      role: { type: 'string' },
      subscribers: { type: 'string', default: '100,1000' },
      duration: { type: 'string', default: '5' },
      rate: { type: 'string', default: '200' },
      window: { type: 'string', default: '64' },
      json: { type: 'boolean', default: false },
      via: { type: 'string', default: 'ws' },
      'cpu-prof': { type: 'string' },
    },
  })
  if (values.role === 'relay') runRelay()
  else if (values.role === 'clients') await runClients()
  else {
    const result = await runFanoutBench({
      subscribers: values.subscribers!.split(',').map(Number),
      durationSec: Number(values.duration),
      rate: Number(values.rate),
      window: Number(values.window),
      cpuProfDir: values['cpu-prof'],
      via: values.via === 'http' ? 'http' : 'ws',
      log: (line) => console.log(line),
    })
    console.log(`\n${table(result)}\n`)
    const results = join(import.meta.dir, 'results')
    mkdirSync(results, { recursive: true })
    writeFileSync(join(results, 'fanout-latest.json'), `${JSON.stringify(result, null, 2)}\n`)
    writeFileSync(join(results, 'fanout-latest.md'), `# Sensor fan-out, ${result.date}\n\nBun ${result.bun}, ${result.cores} cores, ${result.pinned ? 'server on core 0, subscribers and publisher on core 1' : 'not pinned'}, publish over ${result.options.via}, ${result.options.durationSec} s per run.\n\n${table(result)}\n`)
    console.log('wrote bench/results/fanout-latest.json and fanout-latest.md')
    const low = result.ratios.filter((r) => r.ratio < 0.8)
    console.log(low.length === 0 ? '✓ the service delivers ≥ 0.8 of the bare relay everywhere' : `✗ below 0.8 of the relay: ${low.map((r) => `${r.subscribers} ${r.mode} ${r.ratio.toFixed(2)}`).join(', ')}`)
    if (values.json) console.log(JSON.stringify(result, null, 2))
    process.exit(low.length === 0 ? 0 : 1)
  }
}
