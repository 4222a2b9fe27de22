// The SVG bar chart of a run (bench/results/latest.svg, shown in the README): per scenario the
// service, the least-work reference and the ceiling, as a plain string with no native deps.
import { floorLabel, floorMissed, GENERATOR_BOUND, int, ms, ratio, type RunMeta, type ScenarioResult } from './report.ts'

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

const COLOURS = { service: '#2563eb', leastWork: '#d97706', ceiling: '#9ca3af' } as const

export function svgChart(results: ScenarioResult[], meta: RunMeta): string {
  const group = 170
  const left = 70
  const top = 70
  const plotHeight = 260
  const width = left + group * Math.max(results.length, 1) + 30
  const height = top + plotHeight + 116
  const max = Math.max(1, ...results.flatMap((r) => [r.service?.rps ?? 0, r.leastWork?.rps ?? 0, r.ceiling?.rps ?? 0]))
  const step = niceStep(max)
  const yMax = Math.ceil(max / step) * step
  const y = (v: number) => top + plotHeight - (v / yMax) * plotHeight
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`)
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="600" fill="#111827">taskmesh vs least work and a bare Bun.serve ceiling — requests/s</text>`)
  out.push(`<text x="${left}" y="44" fill="#4b5563">${esc(`${meta.generator}, ${meta.connections} connections, ${meta.durationSec} s each, ${meta.cores} cores; labels: service ÷ least work (lw) and ÷ ceiling, the floor, and the same per server CPU-second`)}</text>`)
  for (let v = 0; v <= yMax; v += step) {
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`)
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#6b7280">${short(v)}</text>`)
  }
  const barWidth = 40
  const gap = 6
  results.forEach((r, i) => {
    const x0 = left + i * group + (group - 3 * barWidth - 2 * gap) / 2
    const bars = (['service', 'leastWork', 'ceiling'] as const).map((key, k) => ({ key, m: r[key], x: x0 + k * (barWidth + gap) }))
    for (const { key, m, x } of bars) {
      if (!m) continue
      const h = (m.rps / yMax) * plotHeight
      out.push(`<rect x="${x}" y="${y(m.rps).toFixed(1)}" width="${barWidth}" height="${h.toFixed(1)}" fill="${COLOURS[key]}"><title>${esc(`${r.name}: ${int(m.rps)} req/s, p99 ${ms(m.p99)} ms`)}</title></rect>`)
      const mark = key !== 'service' && m.generatorCpu >= GENERATOR_BOUND ? '*' : ''
      out.push(`<text x="${x + barWidth / 2}" y="${(y(m.rps) - 5).toFixed(1)}" text-anchor="middle" font-size="11" fill="#111827">${short(m.rps)}${mark}</text>`)
    }
    const cx = left + i * group + group / 2
    const line = (n: number, text: string, fill: string) => out.push(`<text x="${cx}" y="${top + plotHeight + n}" text-anchor="middle" fill="${fill}">${esc(text)}</text>`)
    out.push(`<text x="${cx}" y="${top + plotHeight + 18}" text-anchor="middle" font-weight="600" fill="#111827">${esc(r.name)}</text>`)
    line(36, `÷ lw ${ratio(r.leastWorkRatio)} · ÷ ceiling ${ratio(r.ratio)}`, '#111827')
    if (r.floor) line(52, `floor ${floorLabel(r.floor)}`, floorMissed(r) ? '#dc2626' : '#16a34a')
    line(68, `per CPU-s ${ratio(r.leastWorkCpuRatio)} · ${ratio(r.cpuRatio)}`, '#6b7280')
  })
  const ly = height - 22
  const legend = [['service', COLOURS.service], ['least work', COLOURS.leastWork], ['ceiling', COLOURS.ceiling]] as const
  legend.forEach(([label, fill], k) => {
    const x = left + k * 100
    out.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="${fill}"/><text x="${x + 18}" y="${ly}" fill="#111827">${label}</text>`)
  })
  if (results.some((r) => [r.leastWork, r.ceiling].some((m) => m && m.generatorCpu >= GENERATOR_BOUND))) {
    out.push(`<text x="${left + 310}" y="${ly}" fill="#6b7280">* generator-bound: the real figure is higher</text>`)
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}
