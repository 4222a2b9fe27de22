// Summarizes a V8/JSC .cpuprofile (from `bun --cpu-prof`): top functions by self time and
// by inclusive time, and self time per source (src/ file, node_modules package, native).
//
//   bun bench/profile.ts PROFILE.cpuprofile [--top N]
//   bun run bench --cpu-prof            (profiles the service and prints this at the end)
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples?: number[]
  timeDeltas?: number[]
  startTime: number
  endTime: number
}

const root = resolve(import.meta.dir, '..')

function where(frame: CallFrame): string {
  if (!frame.url) return ''
  let url = frame.url.replace(/^file:\/\//, '')
  if (url.startsWith(root)) url = relative(root, url)
  return `${url}:${frame.lineNumber + 1}`
}

/** What a frame belongs to: a src/ file, a node_modules package, or native/runtime. */
function sourceOf(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '')
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native / runtime)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return `node_modules/${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  if (url.startsWith(root)) return relative(root, url)
  return url
}

export interface ProfileSummary {
  samples: number
  idle: number
  self: Array<{ name: string; at: string; samples: number }>
  inclusive: Array<{ name: string; at: string; samples: number }>
  sources: Array<{ source: string; samples: number }>
}

/** Wall-clock window in microseconds since the epoch (the unit of a Bun profile's startTime). */
export interface Window {
  fromUs: number
  toUs: number
}

export function summarize(profile: CpuProfile, window?: Window): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  // Per-sample node ids; older profiles only have hitCount.
  const counts = new Map<number, number>()
  if (profile.samples && profile.samples.length > 0) {
    let at = profile.startTime
    profile.samples.forEach((id, i) => {
      at += profile.timeDeltas?.[i] ?? 0
      if (window && (at < window.fromUs || at > window.toUs)) return
      counts.set(id, (counts.get(id) ?? 0) + 1)
    })
  } else {
    for (const node of profile.nodes) if (node.hitCount) counts.set(node.id, node.hitCount)
  }
  const key = (frame: CallFrame) => `${frame.functionName || '(anonymous)'}\t${where(frame)}`
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const sources = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, count] of counts) {
    const node = byId.get(id)
    if (!node) continue
    total += count
    const name = node.callFrame.functionName
    if (name === '(idle)') idle += count
    self.set(key(node.callFrame), (self.get(key(node.callFrame)) ?? 0) + count)
    sources.set(sourceOf(node.callFrame), (sources.get(sourceOf(node.callFrame)) ?? 0) + count)
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = key(byId.get(at)!.callFrame)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + count)
    }
  }
  const rows = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).map(([k, samples]) => {
    const [name, at] = k.split('\t') as [string, string]
    return { name, at, samples }
  })
  return {
    samples: total,
    idle,
    self: rows(self),
    inclusive: rows(inclusive).filter((row) => row.name !== '(root)'),
    sources: [...sources].sort((a, b) => b[1] - a[1]).map(([source, samples]) => ({ source, samples })),
  }
}

export function format(summary: ProfileSummary, top = 25): string {
  const busy = summary.samples - summary.idle
  const pct = (n: number) => `${((n / Math.max(busy, 1)) * 100).toFixed(1).padStart(5)}%`
  const lines = [`${summary.samples} samples, ${summary.idle} idle; percentages of the ${busy} busy samples`, '', 'self time by function:']
  for (const row of summary.self.filter((r) => r.name !== '(idle)').slice(0, top)) lines.push(`  ${pct(row.samples)}  ${row.name}  ${row.at}`)
  lines.push('', 'self time by source:')
  for (const row of summary.sources.filter((r) => r.source !== '(idle)').slice(0, top)) lines.push(`  ${pct(row.samples)}  ${row.source}`)
  lines.push('', 'inclusive time by function:')
  for (const row of summary.inclusive.filter((r) => r.name !== '(idle)').slice(0, top)) lines.push(`  ${pct(row.samples)}  ${row.name}  ${row.at}`)
  return lines.join('\n')
}

export function newestProfile(dir: string): string | null {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f))
  return files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0] ?? null
}

/** The newest .cpuprofile in `dir`, summarized per named window (e.g. each scenario's measurement). */
export function summarizeLatest(dir: string, windows: Array<Window & { name: string }> = [], top = 20): string {
  const newest = newestProfile(dir)
  if (!newest) return `no .cpuprofile in ${dir}`
  const profile = JSON.parse(readFileSync(newest, 'utf8')) as CpuProfile
  const parts = [`CPU profile of the service: ${relative(root, newest)}`]
  if (windows.length === 0) parts.push(format(summarize(profile), top))
  for (const window of windows) parts.push(`\n=== ${window.name} (samples during its measurement only) ===\n${format(summarize(profile, window), top)}`)
  return parts.join('\n')
}

if (import.meta.main) {
  const args = process.argv.slice(2)
  const topAt = args.indexOf('--top')
  const top = topAt === -1 ? 25 : Number(args[topAt + 1])
  const file = args.find((a, i) => !a.startsWith('--') && i !== topAt + 1)
  if (!file) {
    console.error('usage: bun bench/profile.ts PROFILE.cpuprofile [--top N]')
    process.exit(2)
  }
  console.log(format(summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), top))
}
