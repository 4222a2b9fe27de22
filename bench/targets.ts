// The three servers the HTTP scenarios run against: the service (`bun src/index.ts` on the run's
// scratch database, as the options configure it), bench/least-work.ts on a copy of its seeded
// rows, and bench/ceiling.ts answering with the same shapes and sizes.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { exportSeed } from './least-work-data.ts'
import type { Options } from './options.ts'
import { freePort, pinned, type Server, startServer } from './processes.ts'
import type { Seed } from './seed.ts'

const benchDir = import.meta.dir
const root = resolve(benchDir, '..')
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

/**
 * The models both servers load: models/ plus the bench's own (bench/models: the 100-tree XGBoost
 * booster of the tree scenarios), copied into `dir`/models. Answers that folder.
 */
export function benchModels(dir: string): string {
  const models = join(dir, 'models')
  mkdirSync(models, { recursive: true })
  for (const from of [join(root, 'models'), join(benchDir, 'models')]) {
    for (const file of readdirSync(from).filter((f) => f.endsWith('.json'))) copyFileSync(join(from, file), join(models, file))
  }
  return models
}

/** The service on `core` (unless it runs several workers), with the CPU profile going to `profileDir`. */
export async function startService(options: Options, databaseUrl: string, core: number | null, profileDir: string, extraEnv: Record<string, string> = {}): Promise<Server> {
  const argv = [
    process.execPath,
    ...(options.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    ...options.preloads.flatMap((file) => ['--preload', file]),
    'src/index.ts',
  ]
  if (options.preloads.length > 0) console.log(`what-if: the service runs with --preload ${options.preloads.map((f) => relative(root, f)).join(', ')}`)
  if (options.cpuProf) mkdirSync(profileDir, { recursive: true })
  // Several workers share one fixed port (reusePort) and both cores, so they are not pinned.
  const workerEnv: Record<string, string> = options.workers > 1
    ? { WORKERS: String(options.workers), PORT: String(freePort()), REDIS_URL: redisUrl, REDIS_PREFIX: `bench:${process.pid}:` }
    : {}
  return startServer('service', pinned(argv, options.workers > 1 ? null : core), {
    cwd: root,
    env: { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SIMULATOR: 'off', LOG_LEVEL: options.logLevel, RATE_LIMIT: options.rateLimit, ...workerEnv, ...extraEnv },
    // info prints the "listening" line with the port; quieter levels print nothing to parse.
    ...(options.logLevel === 'info' || options.logLevel === 'debug' ? {} : { health: '/healthz' }),
  })
}

/** The ceiling on `core`, with a task and a page of the seeded data (written to `dir`) so response sizes match. */
export async function startCeiling(service: Server, seed: Seed, dir: string, core: number | null): Promise<Server> {
  const owner = seed.heavy[0]!
  const page = await (await fetch(`${service.url}/v1/tasks?limit=20`, { headers: { 'X-API-Key': owner.key } })).text()
  const items = (JSON.parse(page) as { items: unknown[] }).items.map((item) => JSON.stringify(item)).sort((a, b) => a.length - b.length)
  const fixtures = join(dir, 'ceiling-fixtures.json')
  writeFileSync(fixtures, JSON.stringify({ task: items[Math.floor(items.length / 2)], page }))
  return startServer('ceiling', pinned([process.execPath, join(benchDir, 'ceiling.ts')], core), {
    cwd: root,
    env: { PORT: '0', HOST: '127.0.0.1', CEILING_FIXTURES: fixtures },
  })
}

/**
 * The least-work reference on `core`, on a fresh SQLite file in `dir` holding the rows read back
 * from the seeded service (bench/least-work-data.ts), whatever the service's own store.
 */
export async function startLeastWork(service: Server, seed: Seed, dir: string, core: number | null): Promise<Server> {
  const fixtures = join(dir, 'least-work-fixtures.json')
  const start = performance.now()
  const tasks = await exportSeed(service.url, seed, fixtures)
  const server = await startServer('least-work', pinned([process.execPath, join(benchDir, 'least-work.ts')], core), {
    cwd: root,
    env: { PORT: '0', HOST: '127.0.0.1', LEAST_WORK_FIXTURES: fixtures, LEAST_WORK_DB: join(dir, 'least-work.sqlite'), MODELS_DIR: benchModels(dir) },
    timeoutMs: 60_000,
  })
  console.log(`least work: ${tasks.toLocaleString('en-US')} tasks read back from the service and loaded into its own SQLite file in ${((performance.now() - start) / 1000).toFixed(1)} s`)
  return server
}
