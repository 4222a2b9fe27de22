// Composes the service: the platform plugins, then each feature built from what it needs
// (its store from the database connection, the credentials, telemetry, lifecycle). `App` is what Eden imports.
import type { RedisClient } from 'bun'
import { Elysia, type AnyElysia } from 'elysia'
import type { Config, Service } from './config'
import type { Database } from './db'
import { inference, kserveErrors } from './inference'
import type { ModelRegistry } from './inference/registry'
import { keys as keysApi } from './keys'
import { Credentials, tokenVerifier } from './platform/auth'
import { docs } from './platform/docs'
import { gateway, rateGate } from './platform/gateway'
import { health, Readiness } from './platform/health'
import { ErrorResponses, http } from './platform/http'
import { leanRoutes } from './platform/lean'
import { Lifecycle } from './platform/lifecycle'
import type { Logger } from './platform/logger'
import { observability, RequestRecorder, Telemetry } from './platform/observability'
import { MemoryLimiter, type Limiter } from './platform/ratelimit'
import { RouteTable } from './platform/routes'
import { sensorFeed, sensors, websocketSettings, type SensorFeed } from './sensors'
import type { KeyStore } from './platform/keys'
import { keyStore } from './platform/keys/store'
import { tasks } from './tasks'
import { taskStore } from './tasks/store'

export interface AppDeps {
  config: Config
  database: Database
  log: Logger
  /** The API keys; built from the database unless given (tests keep theirs to create keys). */
  keys?: KeyStore
  /** Verifies presented keys against `keys` (with its cache); a fresh one unless given. */
  credentials?: Credentials
  /** Rate-limit buckets: in memory unless given (Redis when REDIS_URL is set). */
  limiter?: Limiter
  telemetry?: Telemetry
  /** Readiness and graceful shutdown; a fresh one (always accepting) unless given. */
  lifecycle?: Lifecycle
  /** The models to serve, already loaded (tests); without one, inference loads MODELS_DIR at lifecycle start. */
  registry?: ModelRegistry
  /** REDIS_URL's client: the sensor feed and its tickets are shared, and model changes announced, across instances. */
  redis?: RedisClient | null
  /** The sensor feed (hub, tickets, sockets); unless given (tests), built here and wired into the lifecycle. */
  sensors?: SensorFeed
}

export function createApp({ config, database, log, keys = keyStore(database), credentials = new Credentials(keys, { tokens: tokenVerifier(config.oidc, log) }), limiter = new MemoryLimiter(), telemetry = new Telemetry(), lifecycle = new Lifecycle(), registry, redis, sensors: given }: AppDeps) {
  const routes = new RouteTable()
  const errors = new ErrorResponses(routes, log, [kserveErrors])
  const gate = rateGate({ config, credentials, limiter, telemetry, routes })
  const recorder = new RequestRecorder(telemetry, log, (request) => credentials.keyIdOf(request))
  for (const [name, { help }] of Object.entries(database.stats())) telemetry.gauge(name, help, () => database.stats()[name]?.value ?? 0)
  const feed = given ?? sensorFeed(config.services.has('sensors') ? { config, redis, log, lifecycle, limiter } : {})
  const readiness = new Readiness()
    .add('database', () => database.ping())
    .add('accepting', () => lifecycle.accepting)
  // Bun's WebSocket limits are per server, so they live on the root app.
  const app = new Elysia({ normalize: false, websocket: websocketSettings(feed.hub) })
    .use(http({ bodyLimit: config.bodyLimit, routes, log, lifecycle, credentials, errors }))
    .use(observability(telemetry, recorder))
    .use(gateway({ config, credentials, limiter, telemetry, routes, gate }))
    .use(docs(routes, config.oidc))
    .use(health(readiness))
    .use(keysApi(keys, credentials))
    .use(serving(config, 'tasks', () => tasks(taskStore(database), credentials)))
    .use(serving(config, 'inference', () => inference({ config, credentials, telemetry, lifecycle, readiness, log, redis, registry })))
    .use(serving(config, 'sensors', () => sensors({ feed, credentials, telemetry, accepting: () => lifecycle.accepting, origins: config.corsOrigins })))
  routes.load(app.routes)
  // Served over HTTP, the routes that declare `lean` are answered from Bun's route table (platform/lean.ts).
  const served = app.config as { serve?: { routes?: Record<string, unknown> } }
  served.serve = { ...served.serve, routes: { ...served.serve?.routes, ...leanRoutes(app, { credentials, gate, recorder, errors, lifecycle, routes, corsOrigins: config.corsOrigins, bodyLimit: config.bodyLimit }) } }
  return app
}

/**
 * A feature plugin, or an empty stand-in when SERVICES leaves it out. The stand-in
 * keeps the plugin's type, so `App` (and the Eden client) always describes the whole API.
 */
function serving<T extends AnyElysia>(config: Config, service: Service, plugin: () => T): T {
  return config.services.has(service) ? plugin() : (new Elysia({ name: `not-served:${service}` }) as unknown as T)
}

export type App = ReturnType<typeof createApp>
