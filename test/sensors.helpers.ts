// Scaffolding for the sensor feed tests: an app with a feed built from test options
// (small caps, an injected clock), a real listening server, and WebSocket clients
// whose messages are awaited as conditions, never as time.
import { expect } from 'bun:test'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import { openDatabase, type Database } from '../src/db'
import type { KeyStore } from '../src/platform/keys'
import { keyStore } from '../src/platform/keys/store'
import { createKey, DEFAULT_SCOPES, type Scope } from '../src/platform/keys'
import { createLogger } from '../src/platform/logger'
import { sensorFeed, type SensorFeed, type SensorFeedOptions } from '../src/sensors'
import { inProcess, tempDir, uniqueOwner } from './helpers'

export interface SensorApp {
  app: ReturnType<typeof createApp>
  feed: SensorFeed
  database: Database
  keys: KeyStore
  key(owner?: string, scopes?: Scope[]): Promise<string>
  request(path: string, init?: RequestInit & { key?: string; json?: unknown }): Promise<Response>
  /** Listens on 127.0.0.1:0 (once) and returns the base URL, e.g. http://127.0.0.1:41234 */
  listen(): string
  [Symbol.asyncDispose](): Promise<void>
}

export async function sensorApp(options: SensorFeedOptions = {}): Promise<SensorApp> {
  const dir = tempDir()
  const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'app.sqlite')}`, SIMULATOR: 'off', RATE_LIMIT: 'off', MODELS_DIR: join(dir, 'models') })
  const database = await openDatabase(config.databaseUrl)
  const keys = keyStore(database)
  const feed = sensorFeed(options)
  const app = createApp({ config, database, keys, log: createLogger('silent'), sensors: feed })
  let url: string | null = null
  return {
    app,
    feed,
    database,
    keys,
    async key(owner = uniqueOwner(), scopes = DEFAULT_SCOPES) {
      return (await createKey(keys, owner, scopes)).raw
    },
    request: inProcess(app),
    listen() {
      if (!url) {
        app.listen({ port: 0, hostname: '127.0.0.1' })
        url = `http://127.0.0.1:${app.server!.port}`
      }
      return url
    },
    async [Symbol.asyncDispose]() {
      if (url) await app.stop(true)
      await database.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export type Message = Record<string, unknown>

/** A WebSocket client that queues what it receives, so a test can await the next message. */
export class TestSocket {
  readonly ws: WebSocket
  readonly received: Message[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number; reason: string }>
  private cursor = 0
  private waiters: Array<() => void> = []

  constructor(url: string, headers?: Record<string, string>) {
    this.ws = new WebSocket(url, headers ? { headers } : undefined)
    const opened = Promise.withResolvers<void>()
    const closed = Promise.withResolvers<{ code: number; reason: string }>()
    this.opened = opened.promise
    this.closed = closed.promise
    // A refused upgrade fails `opened`; nobody needs to await `closed` then.
    this.opened.catch(() => {})
    this.ws.onopen = () => opened.resolve()
    this.ws.onerror = (event) => opened.reject(new Error((event as ErrorEvent).message ?? 'WebSocket error'))
    this.ws.onclose = (event) => {
      opened.reject(new Error(`closed before opening: ${event.code}`))
      closed.resolve({ code: event.code, reason: event.reason })
      this.wake()
    }
    this.ws.onmessage = (event) => {
      this.received.push(JSON.parse(String(event.data)) as Message)
      this.wake()
    }
  }

  static async open(url: string, headers?: Record<string, string>): Promise<TestSocket> {
    const socket = new TestSocket(url, headers)
    await socket.opened
    return socket
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }

  /** The next message not yet taken. */
  async next(): Promise<Message> {
    return (await this.take(1))[0]!
  }

  /** The next `count` messages not yet taken, in order. */
  async take(count: number): Promise<Message[]> {
    await this.until(() => this.received.length >= this.cursor + count, `${count} more message(s)`)
    const out = this.received.slice(this.cursor, this.cursor + count)
    this.cursor += count
    return out
  }

  /** Resolves when `condition()` holds, checked after every message; fails if the socket closes first. */
  async until(condition: () => boolean, what = 'a condition'): Promise<void> {
    while (!condition()) {
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`socket closed while waiting for ${what}; got ${JSON.stringify(this.received.slice(this.cursor)).slice(0, 500)}`)
      }
      const { promise, resolve } = Promise.withResolvers<void>()
      this.waiters.push(resolve)
      await promise
    }
  }

  /** Sends a ping and waits for its pong: everything the server sent before it has arrived. */
  async sync(): Promise<void> {
    this.send({ op: 'ping' })
    await this.until(() => this.received.slice(this.cursor).some((m) => m.op === 'pong'), 'pong')
    // Drop the pong (and keep what came before it untaken).
    const index = this.received.findIndex((m, i) => i >= this.cursor && m.op === 'pong')
    this.received.splice(index, 1)
  }

  /** Messages received and not yet taken. */
  pending(): Message[] {
    return this.received.slice(this.cursor)
  }

  close(): void {
    this.ws.close()
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }
}

export function wsUrl(base: string, query = ''): string {
  return `${base.replace(/^http/, 'ws')}/v1/sensors/ws${query}`
}

/** A Bun WebSocket client authenticated by header. */
export function keySocket(base: string, key: string): Promise<TestSocket> {
  return TestSocket.open(wsUrl(base), { 'x-api-key': key })
}

export async function ticketFor(t: Pick<SensorApp, 'request'>, key: string): Promise<string> {
  const response = await t.request('/v1/sensors/tickets', { method: 'POST', key })
  if (response.status !== 201) throw new Error(`POST /v1/sensors/tickets answered ${response.status}`)
  return ((await response.json()) as { ticket: string }).ticket
}

/** A raw upgrade request (to see the HTTP answer of a refused upgrade). */
export function upgradeRequest(base: string, query = '', headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/v1/sensors/ws${query}`, {
    headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', ...headers },
  })
}

/** POST a reading over HTTP; expects the 202 and answers its body. */
export async function publish(t: SensorApp, key: string, sensor: string, data: unknown = { v: 1 }) {
  const response = await t.request(`/v1/sensors/${sensor}/readings`, { method: 'POST', key, json: data })
  expect(response.status).toBe(202)
  return (await response.json()) as { topic: string; seq: number }
}

/** GET a sensor's readings; expects the 200 and answers its body. */
export async function readings(t: SensorApp, key: string, sensor: string, query = '') {
  const response = await t.request(`/v1/sensors/${sensor}/readings${query}`, { key })
  expect(response.status).toBe(200)
  return (await response.json()) as { epoch: string | null; items: Array<{ topic: string; seq: number; ts: string; data: unknown }> }
}
