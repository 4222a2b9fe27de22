// Composes the service: the platform plugins, then each feature built from what it needs
// (its store from the database connection, the credentials, telemetry, lifecycle). `App` is what Eden imports.
import { Elysia, type AnyElysia } from 'elysia'
import type { Config, Service } from './config'
import type { Database } from './db'
import { inference, kserveErrors } from './inference'
import { ModelRegistry } from './inference/registry'
import { Credentials } from './platform/auth'
import { docs } from './platform/docs'
import { gateway } from './platform/gateway'
import { health, Readiness } from './platform/health'
import { http } from './platform/http'
import { Lifecycle } from './platform/lifecycle'
import type { Logger } from './platform/logger'
import { observability, Telemetry } from './platform/observability'
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
  /** The models to serve (index.ts loads MODELS_DIR); without one the app serves none and is ready at once. */
  registry?: ModelRegistry
  /** The sensor feed (hub, tickets, sockets); a fresh one unless given. index.ts keeps it to close sockets on shutdown. */
  sensors?: SensorFeed
}

export function createApp({ config, database, log, keys = keyStore(database), credentials = new Credentials(keys), limiter = new MemoryLimiter(), telemetry = new Telemetry(), lifecycle = new Lifecycle(), registry = ModelRegistry.empty(log), sensors: feed = sensorFeed() }: AppDeps) {
  const routes = new RouteTable()
  for (const [name, { help }] of Object.entries(database.stats())) telemetry.gauge(name, help, () => database.stats()[name]?.value ?? 0)
  const hub = feed.hub
  telemetry.gauge('sensor_ws_connections', 'Open sensor WebSocket connections', () => hub.connections)
  telemetry.gauge('sensor_topics', 'Sensor topics with a history kept', () => hub.topics)
  telemetry.total('sensor_messages_published_total', 'Readings accepted for fan-out', () => hub.published)
  telemetry.total('sensor_messages_dropped_total', 'Reading frames not delivered to a subscriber that could not keep up', () => hub.dropped)
  telemetry.total('sensor_slow_consumer_closes_total', 'Sockets closed with 1013 for not keeping up', () => hub.slowConsumerCloses)
  telemetry.total('sensor_messages_rate_limited_total', 'Socket messages refused by the per-connection rate limit', () => hub.rateLimited)
  // Bun's WebSocket limits are per server, so they live on the root app.
  const app = new Elysia({ normalize: false, websocket: websocketSettings(feed.hub) })
    .use(http({ bodyLimit: config.bodyLimit, routes, log, lifecycle, renderers: [kserveErrors] }))
    .use(observability(telemetry, log, (request) => credentials.keyIdOf(request)))
    .use(gateway({ config, credentials, limiter, telemetry, routes }))
    .use(docs())
    .use(health(new Readiness()
      .add('database', () => database.ping())
      .add('accepting', () => lifecycle.accepting)
      .add('models', () => registry.ready)))
    .use(serving(config, 'tasks', () => tasks(taskStore(database), credentials)))
    .use(serving(config, 'inference', () => inference({ registry, keys: credentials, telemetry, accepting: () => lifecycle.accepting })))
    .use(serving(config, 'sensors', () => sensors({ feed, keys: credentials, accepting: () => lifecycle.accepting, origins: config.corsOrigins })))
  routes.load(app.routes)
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
