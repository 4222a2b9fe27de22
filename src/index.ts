// Entry point: read the configuration, open the database and Redis, compose the app, run the
// features' start steps, serve, shut down cleanly.
// `taskmesh keys …` runs the keys CLI instead, so the single-file executable carries it too;
// `taskmesh healthcheck` probes a running instance.
import { RedisClient } from 'bun'
import { createApp } from './app'
import { runPrimary } from './workers'
import { ConfigError, loadConfig, type Config } from './config'
import { openDatabase } from './db'
import { Lifecycle } from './platform/lifecycle'
import { createLogger, flushLog } from './platform/logger'
import { MemoryLimiter, RedisLimiter, redisOptions } from './platform/ratelimit'
import { serveOptions } from './platform/serve'

function configOrExit(): Config {
  try {
    return loadConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`taskmesh: ${error.message}`)
    process.exit(2)
  }
}

if (process.argv[2] === 'keys') {
  const { runKeys } = await import('./platform/keys/cli')
  await runKeys(process.argv.slice(3))
  process.exit()
}

const config = configOrExit()

if (process.argv[2] === 'healthcheck') {
  const ok = await fetch(`http://127.0.0.1:${config.port}/healthz`).then((r) => r.ok, () => false)
  process.exit(ok ? 0 : 1)
}

if (config.workers > 1 && config.workerId === null) {
  await runPrimary(config, async () => (await openDatabase(config.databaseUrl)).close())
}

let stopping = false
const log = createLogger(config.logLevel, config.workerId === null ? {} : { worker: config.workerId })
const database = await openDatabase(config.databaseUrl, { checkpointer: true, log })
const lifecycle = new Lifecycle()
const redis = config.redisUrl ? new RedisClient(config.redisUrl, redisOptions) : null
if (redis) await redis.connect().catch((error) => log.warn({ err: error }, 'Redis is unreachable; rate limits stay per instance until it answers'))
const app = createApp({
  config,
  database,
  log,
  lifecycle,
  limiter: redis ? new RedisLimiter(redis, `${config.redisPrefix}rl:`) : new MemoryLimiter(),
  redis,
})
lifecycle.onShutdown(() => database.close())
if (redis) lifecycle.onShutdown(() => redis.close())

// What features need done before the port opens (inference loads MODELS_DIR and starts sharing model changes).
await lifecycle.start()
app.listen(serveOptions(config, log))
log.info({ url: `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${app.server?.port}` }, 'listening')

async function stop(signal: string) {
  if (stopping) return
  stopping = true
  log.info({ signal }, 'shutting down')
  await lifecycle.shutdown(app.server, { timeoutMs: config.shutdownTimeoutMs, log })
  log.info('stopped')
  await flushLog(log)
  process.exit(0)
}

process.on('SIGTERM', () => void stop('SIGTERM'))
process.on('SIGINT', () => void stop('SIGINT'))
