// Shared test scaffolding: an app on a fresh SQLite file, keys, and request helpers.
import { expect } from 'bun:test'
import { SQL } from 'bun'
import { Database } from 'bun:sqlite'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { loadConfig, type Config } from '../src/config'
import { openDatabase, type Database as Connection } from '../src/db'
import { ModelRegistry } from '../src/inference/registry'
import { createKey, DEFAULT_SCOPES, type KeyStore, type Scope } from '../src/platform/keys'
import { keyStore } from '../src/platform/keys/store'
import { createLogger } from '../src/platform/logger'
import { DEFAULT_POSTGRES, scratchDatabase, type ScratchDatabase } from '../scripts/scratch-database'

export function tempDir(prefix = 'taskmesh-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export const fixtureModels = join(import.meta.dir, 'fixtures/models')

/** Copies the reference model files (not their .expected.json) into `dir`, which it creates. */
export function copyModels(dir: string): string {
  mkdirSync(dir, { recursive: true })
  for (const file of readdirSync(fixtureModels)) {
    if (!file.endsWith('.expected.json')) copyFileSync(join(fixtureModels, file), join(dir, file))
  }
  return dir
}

export interface TestApp {
  app: ReturnType<typeof createApp>
  database: Connection
  /** The key store the app verifies against. */
  keys: KeyStore
  config: Config
  dir: string
  /** Loaded from a private copy of test/fixtures/models (or from MODELS_DIR when given). */
  registry: ModelRegistry
  /** A fresh key for a fresh owner (or the given one). */
  key(owner?: string, scopes?: Scope[]): Promise<string>
  request(path: string, init?: RequestInit & { key?: string; json?: unknown }): Promise<Response>
  /** Runs SQL on the test's database through a separate connection (to break or inspect it). */
  sql(query: string): Promise<unknown[]>
  [Symbol.asyncDispose](): Promise<void>
}

export type RequestInitWith = RequestInit & { key?: string; json?: unknown }

/** Requests to an app in process: `key` becomes X-API-Key, `json` a JSON body. */
export function inProcess(app: { handle(request: Request): Promise<Response> }) {
  return (path: string, init: RequestInitWith = {}): Promise<Response> => {
    const { key, json, ...rest } = init
    const headers = new Headers(rest.headers)
    if (key) headers.set('x-api-key', key)
    let body = rest.body
    if (json !== undefined) {
      body = JSON.stringify(json)
      if (!headers.has('content-type')) headers.set('content-type', 'application/json')
    }
    return app.handle(new Request(`http://localhost${path}`, { ...rest, headers, body }))
  }
}

let owners = 0
export const uniqueOwner = () => `owner-${process.pid}-${++owners}`

/**
 * The database URL and the way to drop it: SQLite in the test's folder, or with TEST_STORE=postgres
 * (or `store` 'postgres', for tests that need one whatever the pass) a fresh PostgreSQL database.
 */
export function testDatabase(dir: string, store: 'sqlite' | 'postgres' = process.env.TEST_STORE === 'postgres' ? 'postgres' : 'sqlite'): Promise<ScratchDatabase> {
  return scratchDatabase(store, { dir, postgres: postgresBase, prefix: 'taskmesh_test' })
}

export const postgresBase = process.env.TEST_POSTGRES_URL ?? DEFAULT_POSTGRES

export async function testApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dir = tempDir()
  const scratch = await testDatabase(dir)
  const config = loadConfig({ DATABASE_URL: scratch.url, SIMULATOR: 'off', RATE_LIMIT: 'off', MODELS_DIR: join(dir, 'models'), ...env })
  if (env.MODELS_DIR === undefined) copyModels(config.modelsDir)
  const database = await openDatabase(config.databaseUrl)
  const keys = keyStore(database)
  const registry = new ModelRegistry({ dir: config.modelsDir, log: createLogger('silent') })
  await registry.load()
  const app = createApp({ config, database, keys, log: createLogger('silent'), registry })
  return {
    app,
    database,
    keys,
    config,
    dir,
    registry,
    async key(owner = uniqueOwner(), scopes = DEFAULT_SCOPES) {
      return (await createKey(keys, owner, scopes)).raw
    },
    async sql(query) {
      if (config.databaseUrl.startsWith('sqlite:')) {
        const db = new Database(join(dir, 'app.sqlite'))
        try {
          return db.query(query).all()
        } finally {
          db.close()
        }
      }
      const client = new SQL(config.databaseUrl)
      try {
        return [...(await client.unsafe(query))]
      } finally {
        await client.close()
      }
    },
    request: inProcess(app),
    async [Symbol.asyncDispose]() {
      registry.close()
      await database.close()
      await scratch.drop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toBe('application/problem+json')
  const body = (await response.json()) as { type: string; title: string; status: number; detail: string; errors?: Array<{ field: string; message: string }> }
  expect(body.status).toBe(response.status)
  expect(typeof body.title).toBe('string')
  expect(typeof body.detail).toBe('string')
  return body
}

async function listening(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
    socket.end()
    return true
  } catch {
    return false
  }
}

const reachable = { postgres: await listening(5432), redis: await listening(6379) }

/**
 * Whether tests that need a real PostgreSQL or Redis should run: always in CI
 * (where a missing service is a failure), elsewhere only when one is listening.
 */
export function needs(service: keyof typeof reachable): boolean {
  if (process.env.CI === 'true' || reachable[service]) return true
  console.warn(`notice: no ${service} on its default port; skipping the tests that need it (CI runs them)`)
  return false
}
