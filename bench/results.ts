// What a run leaves behind: its metadata, the summary on the terminal, the result files under
// bench/results/ (which ones depends on the kind of run), and the exit status.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, relative, resolve } from 'node:path'
import type { ProfileWindow } from './measure.ts'
import type { Options } from './options.ts'
import { GENERATOR_BOUND, markdown, type RunMeta, type ScenarioResult, svgChart, terminalTable } from './report.ts'
import { scenarios } from './scenarios.ts'
import type { Seed } from './seed.ts'

const benchDir = import.meta.dir
const root = resolve(benchDir, '..')
export const resultsDir = join(benchDir, 'results')
export const profileDir = join(resultsDir, 'profiles')

export function loadFloors(): Record<string, number> {
  const path = join(benchDir, 'floors.json')
  if (!existsSync(path)) return {}
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, number>
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
    logLevel: options.logLevel,
    preloads: options.preloads.map((f) => relative(root, f)),
    mode: options.smoke ? 'smoke' : 'full',
    bun: Bun.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: machine.cores,
    pinned: machine.pinned,
    commit: commit(),
    seed: { owners: seed.owners.length, heavyOwners: seed.heavy.length, tasks: seed.tasks, keysSec: seed.seconds.keys, tasksSec: seed.seconds.tasks },
  }
}

/** Prints the table and writes the files of this kind of run; answers the timestamp they are named by. */
export function writeResults(options: Options, results: ScenarioResult[], meta: RunMeta, floors: Record<string, number>): string {
  console.log(`\n${terminalTable(results)}\n`)
  const generatorBound = results.flatMap((r) => [r.service, r.ceiling].filter((m) => m && m.generatorCpu >= GENERATOR_BOUND).map((m) => `${r.name} ${m === r.service ? 'service' : 'ceiling'}`))
  if (generatorBound.length > 0) {
    console.log(`the load generator (${options.generator}) used ≥ ${GENERATOR_BOUND * 100}% of its core in: ${generatorBound.join(', ')} — ` +
      'there it, not the server, limited req/s; a ceiling measured so is a lower bound, and its ratio an upper bound.' +
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
  } else if (!options.smoke && options.scenarios.length < scenarios.length) {
    // A partial run never replaces the latest full results either (README copies latest.md).
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

/** Prints what failed, or that nothing did; answers the exit status. */
export function verdict(options: Options, results: ScenarioResult[], extraFailures: string[]): number {
  const failed = results.filter((r) => r.failures.length > 0)
  if (extraFailures.length > 0) {
    console.log(`\n✗ FAILED: ${extraFailures.join('; ')}`)
    return 1
  }
  if (failed.length > 0) {
    console.log(`\n✗ ${failed.length} scenario(s) FAILED:`)
    for (const r of failed) for (const f of r.failures) console.log(`  ${r.name}: ${f}`)
    return 1
  }
  console.log(options.smoke ? '\n✓ smoke: every scenario completed with zero errors and only expected statuses' : '\n✓ no errors, no unexpected statuses' + (options.check ? ', every ratio at or above its floor' : ''))
  return 0
}
