// Composes the feature plugins into one service. `App` is what Eden imports.
import { Elysia } from 'elysia'
import type { Config } from './config'
import type { Store } from './db'
import { docs } from './platform/docs'
import { health } from './platform/health'
import { http } from './platform/http'
import type { Logger } from './platform/logger'
import { RouteTable } from './platform/routes'
import { tasks } from './tasks'

export interface AppDeps {
  config: Config
  store: Store
  log: Logger
  /** Extra readiness conditions (shutdown in progress, models loaded, …). */
  ready?: () => boolean
}

export function createApp({ config, store, log, ready = () => true }: AppDeps) {
  const routes = new RouteTable()
  const app = new Elysia({ normalize: false })
    .use(http({ bodyLimit: config.bodyLimit, routes, log }))
    .use(docs())
    .use(health([
      { name: 'database', check: () => store.ping() },
      { name: 'accepting', check: ready },
    ]))
    .use(tasks(store.tasks, store.keys))
  routes.load(app.routes)
  return app
}

export type App = ReturnType<typeof createApp>
