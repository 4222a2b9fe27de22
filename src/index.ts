// Entry point: read the configuration, open the store, serve, shut down cleanly.
// `taskmesh keys …` runs the keys CLI instead, so the single-file executable carries it too;
// `taskmesh healthcheck` probes a running instance.
import { createApp } from './app'
import { ConfigError, loadConfig, type Config } from './config'
import { openStore } from './db'
import { createLogger } from './platform/logger'

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

// `taskmesh healthcheck`: for container HEALTHCHECKs in images without curl.
if (process.argv[2] === 'healthcheck') {
  const ok = await fetch(`http://127.0.0.1:${config.port}/healthz`).then((r) => r.ok, () => false)
  process.exit(ok ? 0 : 1)
}

const log = createLogger(config.logLevel)
const store = openStore(config.databaseUrl)
let accepting = true
const app = createApp({ config, store, log, ready: () => accepting })

app.listen({
  port: config.port,
  hostname: config.host,
  // The parser enforces per-route limits with a problem+json 413; this only caps what Bun buffers.
  maxRequestBodySize: Math.max(config.bodyLimit, 16 * 1024 * 1024),
})
log.info({ url: `http://${config.host}:${app.server?.port}` }, 'listening')

async function shutdown(signal: string) {
  if (!accepting) return
  accepting = false
  log.info({ signal }, 'shutting down')
  // Stop accepting connections and let requests already received finish.
  await app.server?.stop(false)
  await store.close()
  log.info('stopped')
  process.exit(0)
}

process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
