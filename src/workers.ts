// WORKERS=N: a primary that migrates the database once, then runs N copies of
// this process on the same port (reusePort) and passes signals on to them.
import type { Config } from './config'

export async function runPrimary(config: Config, migrate: () => Promise<void>): Promise<never> {
  if (!config.redisUrl) {
    console.error(`taskmesh: WORKERS=${config.workers} needs REDIS_URL: sensor fan-out, tickets and rate limits must be shared between the processes`)
    process.exit(2)
  }
  // Migrating here, before any worker opens the database, keeps workers from racing on it.
  await migrate()
  const workers = Array.from({ length: config.workers }, (_, id) =>
    Bun.spawn([process.execPath, ...process.argv.slice(1)], {
      env: { ...process.env, TASKMESH_WORKER: String(id) },
      stdio: ['ignore', 'inherit', 'inherit'],
    }))
  let stopping = false
  const forward = (signal: NodeJS.Signals) => () => {
    stopping = true
    for (const worker of workers) worker.kill(signal)
  }
  process.on('SIGTERM', forward('SIGTERM'))
  process.on('SIGINT', forward('SIGINT'))
  const codes = await Promise.all(workers.map(async (worker) => {
    const code = await worker.exited
    // One worker dying unasked takes the others down too, so the supervisor restarts the whole unit.
    if (!stopping) forward('SIGTERM')()
    return code
  }))
  process.exit(codes.every((code) => code === 0) ? 0 : 1)
}
