// Shared test scaffolding: an app on a fresh SQLite file, keys, and request helpers.
import { expect } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { loadConfig, type Config } from '../src/config'
import { openStore, type Store } from '../src/db'
import { createKey, DEFAULT_SCOPES, type Scope } from '../src/platform/keys'
import { createLogger } from '../src/platform/logger'

export function tempDir(prefix = 'taskmesh-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export interface TestApp {
  app: ReturnType<typeof createApp>
  store: Store
  config: Config
  dir: string
  /** A fresh key for a fresh owner (or the given one). */
  key(owner?: string, scopes?: Scope[]): Promise<string>
  request(path: string, init?: RequestInit & { key?: string; json?: unknown }): Promise<Response>
  [Symbol.asyncDispose](): Promise<void>
}

let owners = 0
export const uniqueOwner = () => `owner-${process.pid}-${++owners}`

export function testApp(env: Record<string, string> = {}): TestApp {
  const dir = tempDir()
  const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'app.sqlite')}`, SIMULATOR: 'off', RATE_LIMIT: 'off', ...env })
  const store = openStore(config.databaseUrl)
  const app = createApp({ config, store, log: createLogger('silent') })
  return {
    app,
    store,
    config,
    dir,
    async key(owner = uniqueOwner(), scopes = DEFAULT_SCOPES) {
      return (await createKey(store.keys, owner, scopes)).raw
    },
    request(path, init = {}) {
      const { key, json, ...rest } = init
      const headers = new Headers(rest.headers)
      if (key) headers.set('x-api-key', key)
      let body = rest.body
      if (json !== undefined) {
        body = JSON.stringify(json)
        if (!headers.has('content-type')) headers.set('content-type', 'application/json')
      }
      return app.handle(new Request(`http://localhost${path}`, { ...rest, headers, body }))
    },
    async [Symbol.asyncDispose]() {
      await store.close()
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
