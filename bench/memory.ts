// Memory of the service: its resident set 5 s after start with nothing to do, and what 10 000 idle
// WebSocket connections (one topic each, a key per hundred) add to it, opened by a separate client process.
// Both are compared with the targets below; a reading published at the end checks that every socket
// is really subscribed.
//
//   bun bench/memory.ts [--sockets 10000]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cliKey } from '../scripts/keys-cli.ts'
import { MAX_SOCKETS_PER_KEY } from '../src/sensors/socket.ts'
import { startServer, stopAll, track } from './processes.ts'

const root = resolve(import.meta.dir, '..')
const MB = 1024 * 1024

/** VmRSS 5 s after start, at most. */
export const IDLE_TARGET_MB = 64
/** What 10 000 idle subscribed sockets may add, at most (scaled linearly for other counts). */
export const SOCKETS_TARGET_MB = 70
const TARGET_SOCKETS = 10_000
const TOPIC_ID = 'memory'
/** Upgrades in flight at once from the client. */
const CONCURRENCY = 250

export interface MemoryResult {
  idleMB: number
  sockets: number
  /** RSS just before the sockets open and once they are all subscribed (and the RSS has settled). */
  beforeMB: number
  afterMB: number
  socketsMB: number
  perSocketKB: number
  /** Sockets that received the reading published after the measurement. */
  delivered: number
  idleTarget: number
  socketsTarget: number
  idlePass: boolean
  socketsPass: boolean
}

export interface MemoryOptions {
  sockets: number
  log?: (line: string) => void
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s*(\d+)/.exec(status)?.[1] ?? Number.NaN) * 1024
}

/** Samples the RSS until two readings 250 ms apart differ by less than 0.25 MB (at most `maxMs`). */
async function settledRss(pid: number, maxMs = 3000): Promise<number> {
  let last = rssBytes(pid)
  for (const deadline = Date.now() + maxMs; Date.now() < deadline;) {
    await Bun.sleep(250)
    const now = rssBytes(pid)
    if (Math.abs(now - last) < MB / 4) return now
    last = now
  }
  return last
}

/** The client process: opens MEMORY_COUNT subscribed sockets, then answers `check` with how many got a reading. */
async function runClient(): Promise<void> {
  const url = process.env.MEMORY_URL!.replace(/^http/, 'ws')
  // Comma-separated: socket i uses key ⌊i / MAX_SOCKETS_PER_KEY⌋ (the service allows a key that many).
  const keys = process.env.MEMORY_KEYS!.split(',')
  const count = Number(process.env.MEMORY_COUNT)
  // Bounded: whatever happens to the bench, this process goes away.
  setTimeout(() => process.exit(3), 90_000).unref()
  const sockets: WebSocket[] = []
  let failed = 0
  let received = 0
  const open = () => new Promise<void>((done) => {
    const ws = new WebSocket(`${url}/v1/sensors/ws`, { headers: { 'x-api-key': keys[Math.floor(sockets.length / MAX_SOCKETS_PER_KEY)]! } })
    sockets.push(ws)
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic: `sensors/${TOPIC_ID}` }))
    ws.onerror = () => {
      failed++
      done()
    }
    ws.onmessage = (event) => {
      if (!String(event.data).includes('"op":"subscribed"')) return
      ws.onmessage = () => void received++
      done()
    }
  })
  for (let i = 0; i < count; i += CONCURRENCY) await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, open))
  console.log(JSON.stringify({ ready: count - failed, failed }))
  const decoder = new TextDecoder()
  for await (const chunk of Bun.stdin.stream()) {
    if (!decoder.decode(chunk).includes('check')) continue
    for (const deadline = Date.now() + 3000; received < count - failed && Date.now() < deadline;) await Bun.sleep(20)
    console.log(JSON.stringify({ received }))
  }
  process.exit(0)
}

/** Lines of a child's stdout, one at a time. */
function lines(child: Bun.Subprocess<'pipe', 'pipe', 'inherit'>): () => Promise<string> {
  const reader = child.stdout.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  return async () => {
    for (;;) {
      const newline = buffer.indexOf('\n')
      if (newline !== -1) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        return line
      }
      const { value, done } = await reader.read()
      if (done) throw new Error(`the memory client exited (code ${await child.exited})`)
      buffer += decoder.decode(value, { stream: true })
    }
  }
}

/** Starts the service as the bench does, measures it idle, then with `sockets` subscribed sockets. */
export async function runMemoryBench({ sockets, log = () => {} }: MemoryOptions): Promise<MemoryResult> {
  const scratch = mkdtempSync(join(tmpdir(), 'taskmesh-memory-'))
  const databaseUrl = `sqlite:${join(scratch, 'app.sqlite')}`
  try {
    const newKey = () => cliKey(databaseUrl, 'memory-bench', ['sensors:read', 'sensors:write'], { onSpawn: track })
    // The first one migrates the new database; then one per MAX_SOCKETS_PER_KEY sockets, eight at a time.
    const keys = [await newKey()]
    while (keys.length < Math.ceil(sockets / MAX_SOCKETS_PER_KEY)) {
      keys.push(...(await Promise.all(Array.from({ length: Math.min(8, Math.ceil(sockets / MAX_SOCKETS_PER_KEY) - keys.length) }, newKey))))
    }
    const key = keys[0]!
    const service = await startServer('service', [process.execPath, 'src/index.ts'], {
      cwd: root,
      // RATE_LIMIT=off: 10 000 upgrades at once would otherwise meet the sensors rate limit.
      env: { HOST: '127.0.0.1', PORT: '0', DATABASE_URL: databaseUrl, SIMULATOR: 'off', RATE_LIMIT: 'off', MODELS_DIR: 'models' },
    })
    await Bun.sleep(5000)
    const idle = rssBytes(service.pid)
    log(`idle: ${(idle / MB).toFixed(1)} MB 5 s after start`)

    const client = Bun.spawn([process.execPath, import.meta.path], {
      cwd: root,
      env: { ...process.env, MEMORY_CLIENT: '1', MEMORY_URL: service.url, MEMORY_KEYS: keys.join(','), MEMORY_COUNT: String(sockets) },
      stdin: 'pipe', stdout: 'pipe', stderr: 'inherit',
    })
    track(client)
    const next = lines(client)
    const before = rssBytes(service.pid)
    const openedAt = performance.now()
    const { ready, failed } = JSON.parse(await next()) as { ready: number; failed: number }
    if (failed > 0) throw new Error(`${failed} of ${sockets} sockets did not open`)
    const after = await settledRss(service.pid)
    log(`${ready} sockets subscribed in ${((performance.now() - openedAt) / 1000).toFixed(1)} s: ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB`)
    const published = await fetch(`${service.url}/v1/sensors/${TOPIC_ID}/readings`, {
      method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: '{"v":1}',
    })
    if (published.status !== 202) throw new Error(`publishing the check reading answered ${published.status}`)
    client.stdin.write('check\n')
    client.stdin.flush()
    const { received } = JSON.parse(await next()) as { received: number }
    client.stdin.end()
    await client.exited
    await service.stop()

    const socketsMB = (after - before) / MB
    const socketsTarget = SOCKETS_TARGET_MB * (sockets / TARGET_SOCKETS)
    return {
      idleMB: idle / MB, sockets, beforeMB: before / MB, afterMB: after / MB, socketsMB,
      perSocketKB: ((after - before) / 1024) / sockets, delivered: received,
      idleTarget: IDLE_TARGET_MB, socketsTarget,
      idlePass: idle / MB <= IDLE_TARGET_MB, socketsPass: socketsMB <= socketsTarget && received === sockets,
    }
  } finally {
    await stopAll(2000)
    rmSync(scratch, { recursive: true, force: true })
  }
}

/** The report's lines. */
export function summary(r: MemoryResult): string[] {
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'FAIL')
  return [
    `idle RSS 5 s after start: ${r.idleMB.toFixed(1)} MB (target ≤ ${r.idleTarget} MB) ${verdict(r.idlePass)}`,
    `${r.sockets.toLocaleString('en-US')} idle subscribed sockets add ${r.socketsMB.toFixed(1)} MB `
      + `(${r.beforeMB.toFixed(1)} → ${r.afterMB.toFixed(1)} MB, ${r.perSocketKB.toFixed(1)} KiB each; target ≤ ${r.socketsTarget.toFixed(1)} MB), `
      + `${r.delivered.toLocaleString('en-US')} got the check reading ${verdict(r.socketsPass)}`,
  ]
}

if (import.meta.main) {
  if (process.env.MEMORY_CLIENT) await runClient()
  else {
    const { values } = parseArgs({ args: process.argv.slice(2), options: { sockets: { type: 'string', default: String(TARGET_SOCKETS) } } })
    const result = await runMemoryBench({ sockets: Number(values.sockets), log: (line) => console.log(line) })
    for (const line of summary(result)) console.log(line)
    process.exit(result.idlePass && result.socketsPass ? 0 : 1)
  }
}
