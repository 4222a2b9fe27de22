// `bun run bench`: the service against the least work its requests need (bench/least-work.ts, a
// bare Bun.serve + bun:sqlite on the same rows) and the ceiling of this machine (bench/ceiling.ts, a
// bare Bun.serve with the same request shapes) on a seeded scratch database, then the fan-out and kernel
// benchmarks. This file runs the steps in order and owns what must be cleaned up however the run
// ends: child processes, the scratch directory and database (see `bun run bench --help`).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_POSTGRES, scratchDatabase, type ScratchDatabase } from '../scripts/scratch-database.ts'
import { runExtras } from './extras.ts'
import { runScenarios, SPARE_PLANS } from './measure.ts'
import { type Options, parseOptions, usage, UsageError } from './options.ts'
import { cores, hasTaskset, killAll, pin, type Server, stopAll } from './processes.ts'
import { loadFloors, profileDir, runMeta, verdict, writeProfileSummary, writeResults } from './results.ts'
import { type Issuer, startIssuer } from './issuer.ts'
import { planFor, seedService } from './seed.ts'
import { benchModels, startCeiling, startLeastWork, startService } from './targets.ts'

const runStart = performance.now()
const postgresServer = process.env.BENCH_POSTGRES_URL ?? DEFAULT_POSTGRES
const controller = new AbortController()
/** Servers started so far, for diagnostics when something fails. */
const started: Server[] = []
/** Database file, ceiling fixtures; kept with --keep. */
let scratch: string | null = null
let keepScratch = false
let database: ScratchDatabase | null = null
let issuer: Issuer | null = null

function removeScratch(): void {
  if (scratch && !keepScratch) rmSync(scratch, { recursive: true, force: true })
}

/** Every child stopped, the scratch database dropped and its directory removed, whether the run succeeded or not. */
async function cleanUp(): Promise<void> {
  await stopAll(3000)
  issuer?.stop()
  await database?.drop().catch(() => {})
  removeScratch()
}

process.on('exit', () => {
  killAll('SIGKILL')
  removeScratch()
})

let interrupted = 0
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted++
    if (interrupted > 1) process.exit(130)
    console.error(`\n${signal}: stopping the load and every child process…`)
    controller.abort()
    void stopAll(2000).finally(() => process.exit(130))
  })
}

/** The options, or the exit status when there is nothing to run (--help, a usage error). */
function readOptions(): Options | number {
  try {
    const options = parseOptions(process.argv.slice(2))
    if (options) return options
    console.log(usage)
    return 0
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`bench: ${(error as Error).message}\n\n${usage}`)
      return 2
    }
    throw error
  }
}

/** A server that has started, remembered for the diagnostics of a failed run. */
async function launched(starting: Promise<Server>): Promise<Server> {
  const server = await starting
  started.push(server)
  return server
}

async function main(): Promise<number> {
  const options = readOptions()
  if (typeof options === 'number') return options
  keepScratch = options.keep

  // Servers on core 0, this process (autocannon) and wrk on core 1.
  const machineCores = cores() // before pinning ourselves to one of them
  const canPin = hasTaskset && machineCores >= 2
  const serverCore = canPin ? 0 : null
  if (!canPin) console.log(hasTaskset ? 'note: fewer than 2 cores available; server and load generator share cores' : 'note: taskset not found; processes are not pinned to cores')

  scratch = mkdtempSync(join(tmpdir(), 'taskmesh-bench-'))
  if (options.keep) console.log(`scratch directory (kept): ${scratch}`)
  const db = database = await scratchDatabase(options.store, { dir: scratch, postgres: postgresServer, prefix: 'taskmesh_bench' })
  console.log(`taskmesh bench: ${options.scenarios.map((s) => s.name).join(', ')} · ${options.generator} · ${options.connections} connections · ` +
    `${options.warmupSec} s warm-up + ${options.durationSec} s per measurement${options.smoke ? ' · smoke' : ''}${canPin ? ' · server on core 0, generator on core 1' : ''}`)

  const plan = planFor(options.smoke, options.connections + SPARE_PLANS)
  // Only a run with a token scenario configures OIDC_ISSUER, so the key scenarios alone measure the service as it was.
  const tokens = options.scenarios.some((scenario) => scenario.tokens) ? issuer = await startIssuer() : null
  const modelsDir = benchModels(scratch)
  const { service, seed } = await seedService(plan, db.url, () => launched(startService(options, db.url, serverCore, profileDir, { ...tokens?.env, MODELS_DIR: modelsDir })), controller.signal)
  if (tokens) for (const owner of seed.owners) owner.token = await tokens.sign(owner.name)
  const ceiling = await launched(startCeiling(service, seed, scratch, serverCore))
  const leastWork = await launched(startLeastWork(service, seed, scratch, serverCore))
  // From here on this process is the load generator: core 1 (the servers are on core 0).
  const pinnedSelf = canPin && pin(process.pid, 1)

  const floors = loadFloors()
  const { results, profileWindows } = await runScenarios({
    options, service, leastWork, ceiling, floors, context: { seed, connections: options.connections },
    generatorCore: canPin ? 1 : null, signal: controller.signal, runStart,
  })

  // Stop the servers gracefully (the service writes its CPU profile on exit).
  const serviceExit = await service.stop()
  await ceiling.stop()
  await leastWork.stop()
  if (serviceExit !== 0) console.log(`note: the service exited with ${serviceExit} on SIGTERM\n${service.stderrTail()}`)

  const stamp = writeResults(options, results, runMeta(options, seed, { cores: machineCores, pinned: pinnedSelf }), floors)
  if (options.cpuProf) await writeProfileSummary(stamp, profileWindows)
  return verdict(options, results, await runExtras(options))
}

let code: number
try {
  code = await main()
} catch (error) {
  if (controller.signal.aborted) {
    code = 130
  } else {
    console.error(`\nbench failed: ${(error as Error).stack ?? error}`)
    for (const server of started) {
      const state = server.child.exitCode === null ? 'running' : `exited with ${server.child.exitCode}${server.child.signalCode ? ` (${server.child.signalCode})` : ''}`
      console.error(`${server.name} (pid ${server.pid}) ${state}; last stderr:\n${server.stderrTail() || '(empty)'}`)
    }
    code = 1
  }
}
await cleanUp()
process.exit(code)
