// Composes the feature plugins into one service. `App` is what Eden imports.
import { Elysia, type AnyElysia } from 'elysia'
import type { Config, Service } from './config'
import type { Store } from './db'
import { inference, kserveErrors } from './inference'
import { ModelRegistry } from './inference/registry'
import { keyIdOf } from './platform/auth'
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
import { tasks } from './tasks'

export interface AppDeps {
  config: Config
  store: Store
  log: Logger
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

export function createApp({ config, store, log, limiter = new MemoryLimiter(), telemetry = new Telemetry(), lifecycle = new Lifecycle(), registry = ModelRegistry.empty(log), sensors: feed = sensorFeed() }: AppDeps) {
  const routes = new RouteTable()
  for (const [name, { help }] of Object.entries(store.stats())) telemetry.gauge(name, help, () => store.stats()[name]?.value ?? 0)
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
    .use(observability(telemetry, log, keyIdOf))
    .use(gateway({ config, keys: store.keys, limiter, telemetry }))
    .use(docs())
    .use(health(new Readiness()
      .add('database', () => store.ping())
      .add('accepting', () => lifecycle.accepting)
      .add('models', () => registry.ready)))
    .use(serving(config, 'tasks', () => tasks(store.tasks, store.keys)))
    .use(serving(config, 'inference', () => inference({ registry, keys: store.keys, telemetry, accepting: () => lifecycle.accepting })))
    .use(serving(config, 'sensors', () => sensors({ feed, keys: store.keys, accepting: () => lifecycle.accepting, origins: config.corsOrigins })))
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
