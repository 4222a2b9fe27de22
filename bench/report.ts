// Rendering the results: what one measurement and one scenario hold (the JSON record), the
// terminal table and the markdown table for the README (the SVG chart is bench/chart.ts).
import type { GeneratorResult } from './scenarios.ts'

export interface TargetMeasurement extends GeneratorResult {
  /** Server process CPU over the measurement, in cores (1 = one core busy all the time). */
  serverCpu: number
  /** Load generator CPU over the measurement, in cores. */
  generatorCpu: number
  /** CPU used by every other process on the machine meanwhile, in cores: noise from a shared host. */
  otherCpu: number
  wallSec: number
}

/** What a floor in bench/floors.json compares the service with. */
export type Reference = 'least-work' | 'ceiling'

/** A target: service req/s ÷ the reference's req/s must be at least `min`. */
export interface Floor {
  against: Reference
  min: number
}

export interface ScenarioResult {
  name: string
  description: string
  service: TargetMeasurement | null
  /** bench/least-work.ts: the same requests with only the work they cannot avoid. */
  leastWork: TargetMeasurement | null
  ceiling: TargetMeasurement | null
  /** service req/s ÷ least-work req/s. */
  leastWorkRatio: number
  /** The same per server CPU-second. */
  leastWorkCpuRatio: number
  /** service req/s ÷ ceiling req/s. */
  ratio: number
  /**
   * The same per server CPU-second: (service req/s ÷ its server CPU) ÷ (ceiling req/s ÷ its CPU).
   * Steadier on a noisy host, and still meaningful when the generator capped the ceiling.
   */
  cpuRatio: number
  floor: Floor | null
  /** Errors and unexpected statuses: anything that fails the run (floors are judged apart, see floorMissed). */
  failures: string[]
}

/** service ÷ the reference `against` names. */
export function ratioAgainst(result: ScenarioResult, against: Reference): number {
  return against === 'least-work' ? result.leastWorkRatio : result.ratio
}

/** Below its floor (or not measured): what --check fails on. */
export function floorMissed(result: ScenarioResult): boolean {
  return result.floor !== null && !(ratioAgainst(result, result.floor.against) >= result.floor.min)
}

export interface RunMeta {
  date: string
  generator: string
  connections: number
  durationSec: number
  warmupSec: number
  /** The rounds each measurement was split into (older results: absent, one). */
  rounds?: number
  logLevel: string
  /** Service --preload files (what-if experiments); empty for a plain run. */
  preloads: string[]
  mode: 'full' | 'smoke'
  bun: string
  cpu: string
  cores: number
  pinned: boolean
  commit: string | null
  seed: { owners: number; heavyOwners: number; tasks: number; keysSec: number; tasksSec: number }
  /** The service's database; the least-work reference always runs on SQLite. */
  store: 'sqlite' | 'postgres'
  workers: number
}

/** The generator is treated as the bottleneck from this share of a core. */
export const GENERATOR_BOUND = 0.9
/** Other processes using more than this share of a core make a measurement suspect. */
export const NOISY = 0.15

export function bottleneck(m: TargetMeasurement | null): string {
  if (!m) return ''
  const gen = m.generatorCpu >= GENERATOR_BOUND
  const srv = m.serverCpu >= GENERATOR_BOUND
  if (gen && srv) return 'both'
  if (gen) return 'generator'
  if (srv) return 'server'
  // Neither side saturated its core: other processes were taking the CPU, or something waits (I/O, locks).
  return m.otherCpu > NOISY ? 'other load' : 'neither'
}

export const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–')
export const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : n.toFixed(0)) : '–')
const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–')
export const ratio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–')

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)))
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n')
}

const TARGETS = [['service', 'service'], ['least-work', 'leastWork'], ['ceiling', 'ceiling']] as const

/** `lw ≥ 0.80` / `ceiling ≥ 0.70`, or – */
export function floorLabel(floor: Floor | null): string {
  return floor === null ? '–' : `${floor.against === 'least-work' ? 'lw' : 'ceiling'} ≥ ${floor.min.toFixed(2)}`
}

export function terminalTable(results: ScenarioResult[]): string {
  const rows: string[][] = [[
    'scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'unexpected', 'server CPU', 'gen CPU', 'other CPU', 'bottleneck', 'req/CPU-s', 'B/resp',
    '÷ least work', '÷ ceiling', 'floor', 'CPU ÷ lw', 'CPU ÷ ceiling',
  ]]
  for (const r of results) {
    let first = true
    for (const [target, key] of TARGETS) {
      const m = r[key]
      if (!m) continue
      rows.push([
        first ? r.name : '', target, int(m.rps), ms(m.p50), ms(m.p99), String(m.errors), String(m.unexpected),
        pct(m.serverCpu), pct(m.generatorCpu), pct(m.otherCpu), bottleneck(m), int(m.rps / m.serverCpu), int(m.bytesPerResponse),
        ...(first ? [ratio(r.leastWorkRatio), ratio(r.ratio), floorLabel(r.floor), ratio(r.leastWorkCpuRatio), ratio(r.cpuRatio)] : ['', '', '', '', '']),
      ])
      first = false
    }
  }
  return pad(rows)
}

const pair = (m: TargetMeasurement | null) => (m ? `${ms(m.p50)} / ${ms(m.p99)}` : '–')
const capped = (m: TargetMeasurement | null) => (m && m.generatorCpu >= GENERATOR_BOUND ? ' ¹' : '')

export function markdown(results: ScenarioResult[], meta: RunMeta): string {
  const lines = [
    '| scenario | service req/s | least-work req/s | ceiling req/s | ÷ least work | ÷ ceiling | floor | ÷ least work per CPU-s | ÷ ceiling per CPU-s | ' +
      'service p50 / p99 ms | least-work p50 / p99 ms | ceiling p50 / p99 ms | server CPU service / least work / ceiling | generator CPU service / least work / ceiling |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const r of results) {
    const { service: s, leastWork: l, ceiling: c } = r
    // The ratio the floor applies to is bold when it is missed.
    const missed = floorMissed(r)
    const shown = (n: number, against: Reference) => (missed && r.floor?.against === against ? `**${ratio(n)}**` : ratio(n))
    const cpu = (pick: (m: TargetMeasurement) => number) => [s, l, c].map((m) => (m ? pct(pick(m)) : '–')).join(' / ')
    lines.push(`| ${r.name} | ${s ? int(s.rps) : '–'} | ${l ? int(l.rps) : '–'}${capped(l)} | ${c ? int(c.rps) : '–'}${capped(c)} | ` +
      `${shown(r.leastWorkRatio, 'least-work')} | ${shown(r.ratio, 'ceiling')} | ${floorLabel(r.floor)} | ${ratio(r.leastWorkCpuRatio)} | ${ratio(r.cpuRatio)} | ` +
      `${pair(s)} | ${pair(l)} | ${pair(c)} | ${cpu((m) => m.serverCpu)} | ${cpu((m) => m.generatorCpu)} |`)
  }
  lines.push('')
  lines.push(`${meta.generator}, ${meta.connections} connections, ${meta.durationSec} s per measurement after ${meta.warmupSec} s warm-up` +
    `${(meta.rounds ?? 1) > 1 ? `, in ${meta.rounds} rounds the three targets took turns in` : ''}; ` +
    `${meta.cores} cores (${meta.cpu})${meta.pinned ? ', servers pinned to core 0 and load generator to core 1' : ', not pinned'}; ` +
    `${int(meta.seed.tasks)} tasks over ${meta.seed.owners} owners; service LOG_LEVEL=${meta.logLevel}${meta.preloads.length ? `, with what-if preload ${meta.preloads.join(', ')}` : ''}; Bun ${meta.bun}; ${meta.date}.`)
  lines.push('Least work: bench/least-work.ts, a bare `Bun.serve` + `bun:sqlite` on the service\'s schema, indexes and seeded rows, doing only the work each request cannot avoid ' +
    '(key looked up in a `Map`, one prepared statement, the task JSON, ETag; predictions through the same WASM kernel). ' +
    'Ceiling: bench/ceiling.ts, a bare `Bun.serve` answering the same paths with same-size JSON (no framework, auth or database). ' +
    'Floors (bench/floors.json) name the reference they apply to: lw = least work. CPU in share of one core. ' +
    '"Per CPU-s" compares requests per second of server CPU, which holds up better when the host is noisy or the load generator caps a reference.')
  if (meta.store !== 'sqlite' || meta.workers > 1) {
    lines.push(`The service ran on ${meta.store === 'postgres' ? 'PostgreSQL' : 'SQLite'}${meta.workers > 1 ? ` as ${meta.workers} workers (not pinned)` : ''}; ` +
      'the least-work reference runs on SQLite, as one process on core 0, whatever the service does.')
  }
  const noise = Math.max(0, ...results.flatMap((r) => [r.service?.otherCpu ?? 0, r.leastWork?.otherCpu ?? 0, r.ceiling?.otherCpu ?? 0]))
  if (noise > NOISY) lines.push(`Shared host: other processes used up to ${pct(noise)} of a core during a measurement; expect some noise.`)
  if (results.some((r) => capped(r.ceiling) || capped(r.leastWork))) {
    lines.push(`¹ the load generator used ≥ ${GENERATOR_BOUND * 100}% of its core: that reference is at least this fast, so the ratio to it is an upper bound.`)
  }
  return lines.join('\n') + '\n'
}
