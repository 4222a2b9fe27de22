// The command line of `bun run bench`: the usage text and the options it parses into, with the
// default timings that keep a full run under 3 minutes.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { GeneratorName } from './generators.ts'
import { type Scenario, scenarioNamed, scenarios } from './scenarios.ts'
import { wrkPath } from './wrk.ts'

// Leaves about 30 s of the 3 minutes for the fan-out and kernel benchmarks.
const MEASURE_BUDGET_SEC = 110
/** Servers each scenario is measured against: the service, the least-work reference, the ceiling. */
const TARGETS = 3

export const usage = `usage: bun run bench [options]

  --scenario NAME      run only these scenarios (repeatable, or a comma list): ${scenarios.map((s) => s.name).join(', ')}
                       (${scenarios.filter((s) => s.tokens).map((s) => s.name).join(', ')} only when named, or with --smoke: it runs the service with OIDC)
  --duration SECONDS   measured time per scenario and target (default 8, less when more than
                       3 scenarios run, so a default run stays under 3 minutes, but never with --check; smoke 1)
  --warmup SECONDS     warm-up before each measurement (default 2; smoke 0.5)
  --rounds N           split each measurement into N rounds (default 4, each at least 1 s) in which
                       service, least work and ceiling take turns, so drift on a shared host weighs on all alike
  --connections N      concurrent connections (default 64; smoke 8)
  --generator NAME     autocannon (default, in-process) or wrk (needs the wrk binary)
  --check              fail when a scenario's ratio is below its floor in bench/floors.json (each
                       floor says its reference: the least-work server or the ceiling); each target is
                       then measured the full 8 s after 2 s of warm-up, whatever the number of scenarios
  --smoke              very short run on a small seed: only asserts zero errors and expected statuses
  --cpu-prof           run the service under bun --cpu-prof; the profile and a summary go to bench/results/profiles/
  --log-level LEVEL    the service's LOG_LEVEL (default info, which includes one access-log line per
                       request; with warn or error the port is chosen up front and /healthz polled)
  --service-preload F  start the service with bun --preload F: a what-if experiment (a file that
                       patches something before src/index.ts loads); results go to *-whatif.json/.md
  --quiet-wait S       before each measurement, wait up to S seconds (default 0: don't) for a second in
                       which other processes use < 15% of a core — for shared, noisy hosts
  --retries N          measure again up to N times when other processes took > 30% of a core, keeping
                       the quietest run (default 1, 0 for --smoke; a default run stays under 3 minutes)
  --keep               keep the scratch directory (database, logs)
  --store sqlite|postgres   the service's database: a scratch SQLite file (default), or a fresh
                       PostgreSQL database on BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432), dropped after
  --workers N          run the service as N processes sharing the port (WORKERS=N, with Redis on
                       BENCH_REDIS_URL, default redis://127.0.0.1:6379); the service is then not pinned
  --rate-limit VALUE   the service's RATE_LIMIT (default off), to measure the limiter's cost
  -h, --help

Writes bench/results/<timestamp>.json, latest.json, latest.md and latest.svg.
Exit status: 0 ok, 1 errors / unexpected statuses / floor missed, 2 usage, 130 interrupted.`

export class UsageError extends Error {}

export interface Options {
  scenarios: Scenario[]
  durationSec: number
  warmupSec: number
  /** Turns the three targets take within a scenario's measurement (see roundsOf in measure.ts). */
  rounds: number
  connections: number
  generator: GeneratorName
  check: boolean
  smoke: boolean
  /** The non-HTTP benchmarks to run after the scenarios. */
  extras: Set<Extra>
  cpuProf: boolean
  logLevel: string
  preloads: string[]
  quietWaitSec: number
  retries: number
  /** Seconds the whole run may take before retries are skipped (only for default timings). */
  budgetSec: number
  keep: boolean
  store: 'sqlite' | 'postgres'
  workers: number
  rateLimit: string
}

const EXTRAS = ['fanout', 'kernel'] as const
export type Extra = (typeof EXTRAS)[number]

function storeOption(raw: string | undefined): 'sqlite' | 'postgres' {
  if (raw === undefined || raw === 'sqlite' || raw === 'postgres') return raw ?? 'sqlite'
  throw new UsageError('--store must be sqlite or postgres')
}

function logLevel(raw: string | undefined): string {
  const level = raw ?? 'info'
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError('--log-level must be debug, info, warn or error')
  return level
}

/** The options, or null for --help; throws UsageError (or a parseArgs error) on bad input. */
export function parseOptions(argv: string[]): Options | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      scenario: { type: 'string', multiple: true },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      generator: { type: 'string' },
      check: { type: 'boolean' },
      smoke: { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      'log-level': { type: 'string' },
      'service-preload': { type: 'string', multiple: true },
      'quiet-wait': { type: 'string' },
      retries: { type: 'string' },
      rounds: { type: 'string' },
      keep: { type: 'boolean' },
      store: { type: 'string' },
      workers: { type: 'string' },
      'rate-limit': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return null
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const smoke = values.smoke ?? false
  const number = (name: string, raw: string | undefined, fallback: number, min: number) => {
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number ≥ ${min}`)
    return n
  }
  const all = (values.scenario ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)
  // fanout and kernel are not HTTP scenarios: they run after them, with their own baselines.
  const extras = new Set(all.length === 0 ? EXTRAS : all.filter((name) => (EXTRAS as readonly string[]).includes(name))) as Set<Extra>
  const names = all.filter((name) => !(EXTRAS as readonly string[]).includes(name))
  // A token scenario configures OIDC for the whole run, which every key request then pays for (the
  // auth check awaits): a default run leaves it out, a smoke run proves it completes, --scenario picks it.
  const selected = all.length === 0 ? scenarios.filter((scenario) => smoke || !scenario.tokens) : names.map((name) => {
    const scenario = scenarioNamed(name)
    if (!scenario) throw new UsageError(`unknown scenario ${name}; known: ${[...scenarios.map((s) => s.name), ...EXTRAS].join(', ')}`)
    return scenario
  })
  const generator = values.generator ?? 'autocannon'
  if (generator !== 'autocannon' && generator !== 'wrk') throw new UsageError('--generator must be autocannon or wrk')
  if (generator === 'wrk' && !wrkPath) {
    throw new UsageError('--generator wrk: the wrk binary is not installed (Debian/Ubuntu: apt-get install wrk). The default generator, autocannon, needs nothing.')
  }
  const unique = [...new Set(selected)]
  // Defaults: 8 s measured after 2 s of warm-up, shortened when many scenarios are selected so
  // the measurements of a default run (service, least work, ceiling) stay within MEASURE_BUDGET_SEC.
  // A gate is never decided on a shortened measurement: with --check every slot is the full 10 s.
  const slot = values.check ? 10 : Math.max(2, Math.min(10, Math.floor(MEASURE_BUDGET_SEC / (TARGETS * unique.length))))
  return {
    scenarios: unique,
    extras,
    durationSec: number('duration', values.duration, smoke ? 1 : Math.round(slot * 0.8), 0.5),
    warmupSec: number('warmup', values.warmup, smoke ? 0.5 : slot - Math.round(slot * 0.8), 0),
    rounds: Math.round(number('rounds', values.rounds, smoke ? 1 : 4, 1)),
    connections: Math.round(number('connections', values.connections, smoke ? 8 : 64, 1)),
    generator,
    check: values.check ?? false,
    smoke,
    cpuProf: values['cpu-prof'] ?? false,
    logLevel: logLevel(values['log-level']),
    preloads: (values['service-preload'] ?? []).map((file) => {
      const path = resolve(file)
      if (!existsSync(path)) throw new UsageError(`--service-preload ${file}: no such file`)
      return path
    }),
    quietWaitSec: number('quiet-wait', values['quiet-wait'], 0, 0),
    retries: Math.round(number('retries', values.retries, smoke ? 0 : 1, 0)),
    budgetSec: values.duration === undefined && values.warmup === undefined && values['quiet-wait'] === undefined ? 140 : Number.POSITIVE_INFINITY,
    keep: values.keep ?? false,
    store: storeOption(values.store),
    workers: Math.round(number('workers', values.workers, 1, 1)),
    rateLimit: values['rate-limit'] ?? 'off',
  }
}
