// What a run leaves behind: its metadata, the summary on the terminal, the result files under
// bench/results/ (which ones depends on the kind of run), and the exit status.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { type ProfileWindow, roundsOf } from './measure.ts'
import type { Options } from './options.ts'
import { svgChart } from './chart.ts'
import { type Floor, floorLabel, floorMissed, GENERATOR_BOUND, markdown, ratio, ratioAgainst, type RunMeta, type ScenarioResult, terminalTable } from './report.ts'
import { scenarios } from './scenarios.ts'
import type { Seed } from './seed.ts'

const benchDir = import.meta.dir
const root = resolve(benchDir, '..')
export const resultsDir = join(benchDir, 'results')
export const profileDir = join(resultsDir, 'profiles')

/** bench/floors.json: per scenario, the reference a target is against and the least ratio to it. */
export function loadFloors(): Record<string, Floor> {
  const path = join(benchDir, 'floors.json')
  if (!existsSync(path)) return {}
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  for (const [name, floor] of Object.entries(raw)) {
    const { against, min } = (floor ?? {}) as Partial<Floor>
    if ((against !== 'least-work' && against !== 'ceiling') || typeof min !== 'number' || !(min > 0)) {
      throw new Error(`bench/floors.json: ${name} must be { "against": "least-work" | "ceiling", "min": a number > 0 }, not ${JSON.stringify(floor)}`)
    }
  }
  return raw as Record<string, Floor>
}

function commit(): string | null {
  try {
    const result = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stdout: 'pipe', stderr: 'ignore' })
    return result.exitCode === 0 ? result.stdout.toString().trim() : null
  } catch {
    return null
  }
}

export function runMeta(options: Options, seed: Seed, machine: { cores: number; pinned: boolean }): RunMeta {
  return {
    date: new Date().toISOString(),
    generator: options.generator,
    connections: options.connections,
    durationSec: options.durationSec,
    warmupSec: options.warmupSec,
    rounds: roundsOf(options),
    logLevel: options.logLevel,
    preloads: options.preloads.map((f) => relative(root, f)),
    mode: options.smoke ? 'smoke' : 'full',
    bun: Bun.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: machine.cores,
    pinned: machine.pinned,
    commit: commit(),
    seed: { owners: seed.owners.length, heavyOwners: seed.heavy.length, tasks: seed.tasks, keysSec: seed.seconds.keys, tasksSec: seed.seconds.tasks },
    store: options.store,
    workers: options.workers,
  }
}

/** Prints the table and writes the files of this kind of run; answers the timestamp they are named by. */
export function writeResults(options: Options, results: ScenarioResult[], meta: RunMeta, floors: Record<string, Floor>): string {
  console.log(`\n${terminalTable(results)}\n`)
  if (options.store !== 'sqlite') console.log(`note: the service ran on ${options.store}; the least-work reference runs on SQLite.`)
  const targets = [['service', 'service'], ['least-work', 'leastWork'], ['ceiling', 'ceiling']] as const
  const generatorBound = results.flatMap((r) => targets.filter(([, key]) => (r[key]?.generatorCpu ?? 0) >= GENERATOR_BOUND).map(([name]) => `${r.name} ${name}`))
  if (generatorBound.length > 0) {
    console.log(`the load generator (${options.generator}) used ≥ ${GENERATOR_BOUND * 100}% of its core in: ${generatorBound.join(', ')} — ` +
      'there it, not the server, limited req/s; a reference measured so is a lower bound, and the ratio to it an upper bound.' +
      (options.generator === 'autocannon' ? ' Try --generator wrk.' : ''))
  }

  mkdirSync(resultsDir, { recursive: true })
  const stamp = meta.date.replace(/[:.]/g, '-')
  const record = JSON.stringify({ meta, floors, results }, null, 2) + '\n'
  const variant = [options.store !== 'sqlite' ? options.store : '', options.workers > 1 ? `workers${options.workers}` : '',
    options.rateLimit !== 'off' ? 'ratelimited' : ''].filter(Boolean).join('-')
  if ((options.preloads.length > 0 || variant) && !options.smoke) {
    // A what-if or variant run (another store, workers, rate limits) never replaces the latest default results.
    const suffix = options.preloads.length > 0 ? 'whatif' : variant
    writeFileSync(join(resultsDir, `${stamp}-${suffix}.json`), record)
    writeFileSync(join(resultsDir, `${stamp}-${suffix}.md`), markdown(results, meta))
    console.log(`wrote bench/results/${stamp}-${suffix}.json and .md (latest.* untouched)`)
  } else if (!options.smoke && options.scenarios.length < scenarios.filter((scenario) => !scenario.tokens).length) {
    // A partial run never replaces the latest full results either (README copies latest.md); a
    // default run is full without the token scenarios it leaves out.
    writeFileSync(join(resultsDir, `${stamp}.json`), record)
    writeFileSync(join(resultsDir, `${stamp}.md`), markdown(results, meta))
    console.log(`wrote bench/results/${stamp}.json and .md (a partial run: latest.* untouched)`)
  } else if (!options.smoke) {
    writeFileSync(join(resultsDir, `${stamp}.json`), record)
    writeFileSync(join(resultsDir, 'latest.json'), record)
    writeFileSync(join(resultsDir, 'latest.md'), markdown(results, meta))
    writeFileSync(join(resultsDir, 'latest.svg'), svgChart(results, meta))
    console.log(`wrote bench/results/${stamp}.json, latest.json, latest.md, latest.svg`)
  } else {
    writeFileSync(join(resultsDir, 'smoke.json'), record)
    console.log('wrote bench/results/smoke.json')
  }
  return stamp
}

/** The service's CPU profile cut into the measurement windows, printed and written next to it. */
export async function writeProfileSummary(stamp: string, windows: ProfileWindow[]): Promise<void> {
  const { summarizeLatest } = await import('./profile.ts')
  const summary = summarizeLatest(profileDir, windows)
  writeFileSync(join(profileDir, `${stamp}-summary.txt`), summary + '\n')
  console.log(`\n${summary}\n\n(also in bench/results/profiles/${stamp}-summary.txt)`)
}

const REFERENCE_NAMES = { 'least-work': 'least work', ceiling: 'the ceiling' } as const

/** With --check: each floor of the scenarios that ran, met or missed; answers the names of those missed. */
function floorVerdict(options: Options, results: ScenarioResult[]): string[] {
  const judged = results.filter((r) => r.floor !== null)
  if (judged.length === 0) return []
  console.log(`\nfloors (bench/floors.json)${options.smoke ? ', on smoke runs (1 s on a small seed: indicative only)' : ''}:`)
  const width = Math.max(...judged.map((r) => r.name.length))
  for (const r of judged) {
    const floor = r.floor!
    const value = ratioAgainst(r, floor.against)
    const shown = Number.isFinite(value) ? ratio(value) : 'not measured'
    console.log(`  ${floorMissed(r) ? '✗' : '✓'} ${r.name.padEnd(width)}  service ÷ ${REFERENCE_NAMES[floor.against]} ${shown}, floor ${floorLabel(floor)}`)
  }
  return judged.filter(floorMissed).map((r) => r.name)
}

/** Prints what failed (and with --check, every floor met or missed), or that nothing did; answers the exit status. */
export function verdict(options: Options, results: ScenarioResult[], extraFailures: string[]): number {
  const failed = results.filter((r) => r.failures.length > 0)
  const missed = options.check ? floorVerdict(options, results) : []
  if (extraFailures.length > 0) console.log(`\n✗ FAILED: ${extraFailures.join('; ')}`)
  if (failed.length > 0) {
    console.log(`\n✗ ${failed.length} scenario(s) FAILED:`)
    for (const r of failed) for (const f of r.failures) console.log(`  ${r.name}: ${f}`)
  }
  if (missed.length > 0) console.log(`\n✗ ${missed.length} floor(s) missed: ${missed.join(', ')}`)
  if (extraFailures.length > 0 || failed.length > 0 || missed.length > 0) return 1
  const floors = options.check ? ', every ratio at or above its floor' : ''
  console.log(options.smoke ? `\n✓ smoke: every scenario completed with zero errors and only expected statuses${floors}` : `\n✓ no errors, no unexpected statuses${floors}`)
  return 0
}
