// Entry point: read the configuration, open the store, serve, shut down cleanly.
// `taskmesh keys …` runs the keys CLI instead, so the single-file executable carries it too;
// `taskmesh healthcheck` probes a running instance.
import { RedisClient } from 'bun'
import { createApp } from './app'
import { runPrimary } from './workers'
import { ConfigError, loadConfig, type Config } from './config'
import { openDatabase } from './db'
import { ModelRegistry } from './inference/registry'
import { Lifecycle } from './platform/lifecycle'
import { createLogger, flushLog } from './platform/logger'
import { MemoryLimiter, RedisLimiter, redisOptions } from './platform/ratelimit'
import { sensorFeed, socketLimitsFor, startSimulator } from './sensors'
import { RedisFeed, RedisTicketStore } from './sensors/cluster'
import { shareModelChanges } from './inference/announce'

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
  const { runKeys } = await import('./cli/keys')
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
const database = await openDatabase(config.databaseUrl)
const lifecycle = new Lifecycle()
const redis = config.redisUrl ? new RedisClient(config.redisUrl, redisOptions) : null
// An instance that does not serve predictions loads no models (and is ready without them).
const registry = config.services.has('inference') ? new ModelRegistry({ dir: config.modelsDir, log }) : ModelRegistry.empty(log)
if (redis) await redis.connect().catch((error) => log.warn({ err: error }, 'Redis is unreachable; rate limits stay per instance until it answers'))
// With Redis the sensor feed is cluster-wide: shared seqs, history, fan-out and tickets.
const backend = redis && config.services.has('sensors') ? new RedisFeed(redis, config.redisUrl!, config.redisPrefix) : undefined
const feed = sensorFeed({
  socketLimits: socketLimitsFor(config),
  backend,
  tickets: redis ? new RedisTicketStore(redis, config.redisPrefix) : undefined,
})
if (backend) {
  const deliver = (topic: string, epoch: string, seq: number, frame: string) => feed.hub.deliver(topic, epoch, seq, frame)
  const follow = async (): Promise<void> => {
    try {
      await backend.listen(deliver, () => {
        log.warn('lost the shared sensor feed; closing sockets so clients resume elsewhere')
        feed.hub.disconnect(1012, 'sensor feed interrupted: reconnect and resubscribe with since')
        if (!stopping) setTimeout(() => void follow(), 1000).unref()
      })
    } catch (error) {
      log.warn({ err: error }, 'cannot follow the shared sensor feed yet; retrying')
      if (!stopping) setTimeout(() => void follow(), 1000).unref()
    }
  }
  await follow()
  lifecycle.onShutdown(() => backend.close())
}
const app = createApp({
  config,
  database,
  log,
  lifecycle,
  limiter: redis ? new RedisLimiter(redis, `${config.redisPrefix}rl:`) : new MemoryLimiter(),
  registry,
  sensors: feed,
})
lifecycle.onShutdown(() => database.close())
if (redis) lifecycle.onShutdown(() => redis.close())
lifecycle.onShutdown(() => registry.close())
if (redis && config.services.has('inference')) {
  const stopSharing = await shareModelChanges(redis, config.redisPrefix, registry, log)
    .catch((error) => (log.warn({ err: error }, 'model changes are not announced to other instances (Redis unreachable)'), null))
  if (stopSharing) lifecycle.onShutdown(stopSharing)
}
// Sensor feed: simulated readings when SIMULATOR=on, published through the hub like any other.
// Under WORKERS only the first worker simulates, or every reading would come N times.
const simulator = config.simulator && config.services.has('sensors') && (config.workerId ?? 0) === 0 ? startSimulator(feed.hub) : null
if (simulator) lifecycle.onShutdown(() => simulator.stop())

// Load MODELS_DIR before opening the port (readiness `models` stays false until then), then watch it.
if (config.services.has('inference')) await registry.start()
app.listen({
  port: config.port,
  hostname: config.host,
  reusePort: config.workers > 1,
  // The parser enforces per-route limits with a problem+json 413; this only caps what Bun buffers.
  maxRequestBodySize: Math.max(config.bodyLimit, 16 * 1024 * 1024),
})
log.info({ url: `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${app.server?.port}` }, 'listening')

async function stop(signal: string) {
  if (stopping) return
  stopping = true
  log.info({ signal }, 'shutting down')
  // Sensor sockets first, with 1001: server.stop() would wait for them, and new ones are refused from here on.
  feed.hub.shutdown()
  await lifecycle.shutdown(app.server, { timeoutMs: config.shutdownTimeoutMs, log })
  log.info('stopped')
  await flushLog(log)
  process.exit(0)
}

process.on('SIGTERM', () => void stop('SIGTERM'))
process.on('SIGINT', () => void stop('SIGINT'))
