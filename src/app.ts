// Composes the feature plugins into one service. `App` is what Eden imports.
import { Elysia } from 'elysia'
import type { Config } from './config'
import type { Store } from './db'
import { inference } from './inference'
import { ModelRegistry } from './inference/registry'
import { keyIdOf } from './platform/auth'
import { docs } from './platform/docs'
import { gateway } from './platform/gateway'
import { health } from './platform/health'
import { http } from './platform/http'
import { Lifecycle } from './platform/lifecycle'
import type { Logger } from './platform/logger'
import { observability, Telemetry } from './platform/observability'
import { MemoryLimiter, type Limiter } from './platform/ratelimit'
import { RouteTable } from './platform/routes'
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
}

export function createApp({ config, store, log, limiter = new MemoryLimiter(), telemetry = new Telemetry(), lifecycle = new Lifecycle(), registry = ModelRegistry.empty(log) }: AppDeps) {
  const routes = new RouteTable()
  for (const [name, { help }] of Object.entries(store.stats())) telemetry.gauge(name, help, () => store.stats()[name]?.value ?? 0)
  const app = new Elysia({ normalize: false })
    .use(http({ bodyLimit: config.bodyLimit, routes, log, lifecycle }))
    .use(observability(telemetry, log, keyIdOf))
    .use(gateway({ config, keys: store.keys, limiter, telemetry }))
    .use(docs())
    .use(health([
      { name: 'database', check: () => store.ping() },
      { name: 'accepting', check: () => lifecycle.accepting },
      { name: 'models', check: () => registry.ready },
    ]))
    .use(tasks(store.tasks, store.keys))
    .use(inference({ registry, keys: store.keys, telemetry, accepting: () => lifecycle.accepting }))
  routes.load(app.routes)
  return app
}

export type App = ReturnType<typeof createApp>
