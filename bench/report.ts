// Rendering the results: a terminal table, a markdown table for the README, an SVG bar
// chart (plain string, no native deps) and the JSON record.
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

export interface ScenarioResult {
  name: string
  description: string
  service: TargetMeasurement | null
  ceiling: TargetMeasurement | null
  /** service req/s ÷ ceiling req/s: what the floors in bench/floors.json apply to. */
  ratio: number
  /**
   * The same per server CPU-second: (service req/s ÷ its server CPU) ÷ (ceiling req/s ÷ its CPU).
   * Steadier on a noisy host, and still meaningful when the generator capped the ceiling.
   */
  cpuRatio: number
  floor: number | null
  /** Errors, unexpected statuses, floors missed: anything that fails the run. */
  failures: string[]
}

export interface RunMeta {
  date: string
  generator: string
  connections: number
  durationSec: number
  warmupSec: number
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

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–')
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : n.toFixed(0)) : '–')
const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–')
const ratio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–')

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)))
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n')
}

export function terminalTable(results: ScenarioResult[]): string {
  const rows: string[][] = [[
    'scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'unexpected', 'server CPU', 'gen CPU', 'other CPU', 'bottleneck', 'req/CPU-s', 'B/resp', 'ratio', 'floor', 'CPU ratio',
  ]]
  for (const r of results) {
    for (const [target, m] of [['service', r.service], ['ceiling', r.ceiling]] as const) {
      if (!m) continue
      const first = target === 'service' || !r.service
      rows.push([
        first ? r.name : '', target, int(m.rps), ms(m.p50), ms(m.p99), String(m.errors), String(m.unexpected),
        pct(m.serverCpu), pct(m.generatorCpu), pct(m.otherCpu), bottleneck(m), int(m.rps / m.serverCpu), int(m.bytesPerResponse),
        first ? ratio(r.ratio) : '', first ? (r.floor === null ? '–' : r.floor.toFixed(2)) : '', first ? ratio(r.cpuRatio) : '',
      ])
    }
  }
  return pad(rows)
}

export function markdown(results: ScenarioResult[], meta: RunMeta): string {
  const lines = [
    `| scenario | service req/s | ceiling req/s | ratio | floor | ratio per CPU-s | service p50 / p99 ms | ceiling p50 / p99 ms | server CPU service / ceiling | generator CPU service / ceiling |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const r of results) {
    const s = r.service
    const c = r.ceiling
    const below = r.floor !== null && Number.isFinite(r.ratio) && r.ratio < r.floor
    lines.push(`| ${r.name} | ${s ? int(s.rps) : '–'} | ${c ? int(c.rps) : '–'}${c && c.generatorCpu >= GENERATOR_BOUND ? ' ¹' : ''} | ${below ? `**${ratio(r.ratio)}**` : ratio(r.ratio)} | ${r.floor === null ? '–' : r.floor.toFixed(2)} | ${ratio(r.cpuRatio)} | ${s ? `${ms(s.p50)} / ${ms(s.p99)}` : '–'} | ${c ? `${ms(c.p50)} / ${ms(c.p99)}` : '–'} | ${s ? pct(s.serverCpu) : '–'} / ${c ? pct(c.serverCpu) : '–'} | ${s ? pct(s.generatorCpu) : '–'} / ${c ? pct(c.generatorCpu) : '–'} |`)
  }
  lines.push('')
  lines.push(`${meta.generator}, ${meta.connections} connections, ${meta.durationSec} s per measurement after ${meta.warmupSec} s warm-up; ` +
    `${meta.cores} cores (${meta.cpu})${meta.pinned ? ', server pinned to core 0 and load generator to core 1' : ', not pinned'}; ` +
    `${int(meta.seed.tasks)} tasks over ${meta.seed.owners} owners; service LOG_LEVEL=${meta.logLevel}${meta.preloads.length ? `, with what-if preload ${meta.preloads.join(', ')}` : ''}; Bun ${meta.bun}; ${meta.date}.`)
  lines.push('Ceiling: bench/ceiling.ts, a bare `Bun.serve` answering the same paths with same-size JSON (no framework, auth or database). CPU in share of one core. ' +
    '"Ratio per CPU-s" compares requests per second of server CPU, which holds up better when the host is noisy or the load generator caps the ceiling.')
  const noise = Math.max(0, ...results.flatMap((r) => [r.service?.otherCpu ?? 0, r.ceiling?.otherCpu ?? 0]))
  if (noise > NOISY) lines.push(`Shared host: other processes used up to ${pct(noise)} of a core during a measurement; expect some noise.`)
  if (results.some((r) => r.ceiling && r.ceiling.generatorCpu >= GENERATOR_BOUND)) {
    lines.push(`¹ the load generator used ≥ ${GENERATOR_BOUND * 100}% of its core: the ceiling is at least this fast, so that ratio is an upper bound.`)
  }
  return lines.join('\n') + '\n'
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function short(n: number): string {
  if (!Number.isFinite(n)) return '–'
  if (n >= 10_000) return `${(n / 1000).toFixed(0)}k`
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`
  return n.toFixed(0)
}

function niceStep(max: number): number {
  const rough = max / 5
  const power = 10 ** Math.floor(Math.log10(rough || 1))
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= rough) ?? power * 10
}

export function svgChart(results: ScenarioResult[], meta: RunMeta): string {
  const group = 150
  const left = 70
  const top = 70
  const plotHeight = 260
  const width = left + group * Math.max(results.length, 1) + 30
  const height = top + plotHeight + 100
  const max = Math.max(1, ...results.flatMap((r) => [r.service?.rps ?? 0, r.ceiling?.rps ?? 0]))
  const step = niceStep(max)
  const yMax = Math.ceil(max / step) * step
  const y = (v: number) => top + plotHeight - (v / yMax) * plotHeight
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`)
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="600" fill="#111827">taskmesh vs bare Bun.serve ceiling — requests/s</text>`)
  out.push(`<text x="${left}" y="44" fill="#4b5563">${esc(`${meta.generator}, ${meta.connections} connections, ${meta.durationSec} s each, ${meta.cores} cores; labels: service ÷ ceiling req/s (floor), and per server CPU-second`)}</text>`)
  for (let v = 0; v <= yMax; v += step) {
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`)
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#6b7280">${short(v)}</text>`)
  }
  const barWidth = 44
  results.forEach((r, i) => {
    const x0 = left + i * group + (group - 2 * barWidth - 8) / 2
    const bars = [
      { m: r.service, x: x0, fill: '#2563eb' },
      { m: r.ceiling, x: x0 + barWidth + 8, fill: '#9ca3af' },
    ]
    for (const { m, x, fill } of bars) {
      if (!m) continue
      const h = (m.rps / yMax) * plotHeight
      out.push(`<rect x="${x}" y="${y(m.rps).toFixed(1)}" width="${barWidth}" height="${h.toFixed(1)}" fill="${fill}"><title>${esc(`${r.name}: ${int(m.rps)} req/s, p99 ${ms(m.p99)} ms`)}</title></rect>`)
      const mark = fill === '#9ca3af' && m.generatorCpu >= GENERATOR_BOUND ? '*' : ''
      out.push(`<text x="${x + barWidth / 2}" y="${(y(m.rps) - 5).toFixed(1)}" text-anchor="middle" fill="#111827">${short(m.rps)}${mark}</text>`)
    }
    const cx = left + i * group + group / 2
    out.push(`<text x="${cx}" y="${top + plotHeight + 18}" text-anchor="middle" font-weight="600" fill="#111827">${esc(r.name)}</text>`)
    const below = r.floor !== null && r.ratio < r.floor
    const label = `${ratio(r.ratio)}×${r.floor === null ? '' : ` (${r.floor.toFixed(2)})`}`
    out.push(`<text x="${cx}" y="${top + plotHeight + 36}" text-anchor="middle" fill="${below ? '#dc2626' : '#16a34a'}">${esc(label)}</text>`)
    out.push(`<text x="${cx}" y="${top + plotHeight + 52}" text-anchor="middle" fill="#6b7280">${esc(`per CPU-s ${ratio(r.cpuRatio)}×`)}</text>`)
  })
  const ly = height - 22
  out.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="#2563eb"/><text x="${left + 18}" y="${ly}" fill="#111827">service</text>`)
  out.push(`<rect x="${left + 90}" y="${ly - 10}" width="12" height="12" fill="#9ca3af"/><text x="${left + 108}" y="${ly}" fill="#111827">ceiling</text>`)
  if (results.some((r) => r.ceiling && r.ceiling.generatorCpu >= GENERATOR_BOUND)) {
    out.push(`<text x="${left + 190}" y="${ly}" fill="#6b7280">* generator-bound: the real ceiling is higher</text>`)
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}
