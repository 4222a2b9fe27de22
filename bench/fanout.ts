// Sensor fan-out: N WebSocket subscribers on one topic (bench/subscribers.ts) and a publisher at a
// fixed rate and at full speed (bench/publisher.ts), against the service and against a bare Bun.serve
// pub/sub relay (bench/relay.ts) in the same run. Reports delivered messages/s and
// publish-to-receive latency (p50/p99), with the server on core 0 and everything else on core 1.
//
//   bun bench/fanout.ts [--subscribers 100,1000] [--duration 5] [--rate 200] [--window 64] [--via ws|http] [--json] [--cpu-prof DIR]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cliKey } from '../scripts/keys-cli.ts'
import { cores, cpuSeconds, hasTaskset, pin, pinned, type Server, startServer, stopAll, track } from './processes.ts'
import { publishFor } from './publisher.ts'
import { PER_PROCESS, SOCKETS_PER_KEY, type SubscriberReport, Subscribers } from './subscribers.ts'

const root = resolve(import.meta.dir, '..')

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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Until the subscribers received `expected` readings in all, or nothing more arrives for a second. */
async function drain(groups: Subscribers[], expected: number): Promise<void> {
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

/** `keys`: the publisher's first, then one per SOCKETS_PER_KEY subscribers (none for the relay). */
async function measure(target: Server & { keys: string[]; kind: 'service' | 'relay' }, subscribers: number, mode: 'fixed' | 'full', options: FanoutOptions, clientCore: number | null): Promise<FanoutMeasurement> {
  const processes = Math.ceil(subscribers / PER_PROCESS)
  const [publisherKey, ...subscriberKeys] = target.keys
  const perProcess = PER_PROCESS / SOCKETS_PER_KEY
  const groups = await Promise.all(Array.from({ length: processes }, (_, i) =>
    Subscribers.start(target.url, subscriberKeys.slice(i * perProcess, (i + 1) * perProcess), Math.min(PER_PROCESS, subscribers - i * PER_PROCESS), clientCore)))
  try {
    // Warm-up: a short burst everyone must receive, then counters from zero.
    const warm = await publishFor(target.url, publisherKey, options.via, 'fixed', 0.5, options.rate, options.window, groups)
    await drain(groups, warm.published * subscribers)
    await Promise.all(groups.map((g) => g.ask('reset')))
    const cpuBefore = cpuSeconds(target.pid)
    const wallBefore = performance.now()
    const { published, startedAt } = await publishFor(target.url, publisherKey, options.via, mode, options.durationSec, options.rate, options.window, groups)
    const expected = published * subscribers
    await drain(groups, expected)
    const serverCpu = (cpuSeconds(target.pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000)
    const reports = await Promise.all(groups.map((g) => g.ask<SubscriberReport>('report')))
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
    // One key for the publisher and one per SOCKETS_PER_KEY subscribers, as devices would hold.
    const keyCount = 1 + Math.ceil(Math.max(...options.subscribers) / SOCKETS_PER_KEY)
    const newKey = () => cliKey(databaseUrl, 'fanout-bench', ['sensors:read', 'sensors:write'], { onSpawn: track })
    // The first one migrates the new database; the rest are made at once.
    const keys = [await newKey(), ...(await Promise.all(Array.from({ length: keyCount - 1 }, newKey)))]
    const service = Object.assign(await startServer('service', pinned([process.execPath, ...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []), 'src/index.ts'], serverCore), {
      cwd: root,
      // LOG_LEVEL=warn: no access-log line per publish (the relay writes none either). RATE_LIMIT=off
      // also lifts the per-connection message limit for the WebSocket publisher.
      env: { HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SIMULATOR: 'off', RATE_LIMIT: 'off', LOG_LEVEL: 'warn', MODELS_DIR: join(scratch, 'models') },
      health: '/healthz',
    }), { keys, kind: 'service' as const })
    const relay = Object.assign(await startServer('relay', pinned([process.execPath, join(import.meta.dir, 'relay.ts')], serverCore), {
      cwd: root, env: { HOST: '127.0.0.1', PORT: '0' },
    }), { keys: [] as string[], kind: 'relay' as const })
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
      subscribers: { type: 'string', default: '100,1000' },
      duration: { type: 'string', default: '5' },
      rate: { type: 'string', default: '200' },
      window: { type: 'string', default: '64' },
      json: { type: 'boolean', default: false },
      via: { type: 'string', default: 'ws' },
      'cpu-prof': { type: 'string' },
    },
  })
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
