// The fan-out's subscribers: a process holding up to PER_PROCESS WebSocket subscriptions to the
// bench topic, counting readings and sampling their publish-to-receive latency, and `Subscribers`,
// which starts one and drives it over stdin/stdout (reset, count, report: one JSON line each).
//
//   FANOUT_URL=http://127.0.0.1:PORT FANOUT_COUNT=500 [FANOUT_KEY=tm_…] bun bench/subscribers.ts
import { resolve } from 'node:path'
import { pinned, track } from './processes.ts'

const root = resolve(import.meta.dir, '..')
/** The one topic the subscribers follow and the publisher publishes to. */
export const TOPIC_ID = 'bench'
export const TOPIC = `sensors/${TOPIC_ID}`
/** Sockets one subscriber process opens at most. */
export const PER_PROCESS = 500
/** Sockets per API key: the service holds at most MAX_SOCKETS_PER_KEY open for one. */
export const SOCKETS_PER_KEY = 100
const SAMPLES_PER_PROCESS = 50_000

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes: readings carry it as their publish time. */
export const now = () => performance.timeOrigin + performance.now()

export interface SubscriberReport {
  received: number
  /** Epoch ms of the last reading received. */
  lastAt: number
  samples: number[]
  closes: Record<string, number>
}

/** The subscriber process itself: opens FANOUT_COUNT sockets, then answers the commands on stdin. */
async function runSubscriberProcess(): Promise<void> {
  const url = process.env.FANOUT_URL!
  // Comma-separated: socket i uses key ⌊i / SOCKETS_PER_KEY⌋ (the service allows a key that many).
  const keys = (process.env.FANOUT_KEYS ?? '').split(',').filter(Boolean)
  const count = Number(process.env.FANOUT_COUNT)
  let received = 0
  let seen = 0
  let lastAt = 0
  let samples = new Float64Array(SAMPLES_PER_PROCESS)
  const closes: Record<string, number> = {}
  /** Readings each socket received: the slowest one is what the publisher paces itself by. */
  const perSocket = new Float64Array(count)
  let opened = 0
  const onMessage = (event: MessageEvent) => {
    const text = event.data as string
    // Readings end with "data":{"t":<publish time>}}; the subscribed ack has no "t".
    const at = text.lastIndexOf('"t":')
    if (at === -1) return
    const t = Number.parseFloat(text.slice(at + 4))
    const arrived = now()
    received++
    seen++
    lastAt = arrived
    // Reservoir sampling keeps a uniform sample of every latency seen.
    if (seen <= SAMPLES_PER_PROCESS) samples[seen - 1] = arrived - t
    else {
      const slot = Math.floor(Math.random() * seen)
      if (slot < SAMPLES_PER_PROCESS) samples[slot] = arrived - t
    }
  }
  const open = () => new Promise<void>((resolveOpen, reject) => {
    const index = opened++
    const key = keys[Math.floor(index / SOCKETS_PER_KEY)]
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/sensors/ws`, key ? { headers: { 'x-api-key': key } } : undefined)
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic: TOPIC }))
    ws.onerror = () => reject(new Error('socket error'))
    ws.onclose = (event) => {
      closes[event.code] = (closes[event.code] ?? 0) + 1
    }
    ws.onmessage = (event) => {
      if (String(event.data).includes('"op":"subscribed"')) {
        ws.onmessage = (message) => {
          perSocket[index]!++
          onMessage(message)
        }
        resolveOpen()
      }
    }
  })
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, open))
  console.log(JSON.stringify({ ready: true }))
  // Progress for the full-speed publisher: the count of the slowest socket, whenever it moves.
  let lastMin = -1
  setInterval(() => {
    let min = Infinity
    for (const n of perSocket) if (n < min) min = n
    if (min !== lastMin) {
      lastMin = min
      console.log(JSON.stringify({ min }))
    }
  }, 2)
  const decoder = new TextDecoder()
  for await (const chunk of Bun.stdin.stream()) {
    for (const command of decoder.decode(chunk).split('\n').filter(Boolean)) {
      if (command === 'reset') {
        received = 0
        seen = 0
        lastAt = 0
        samples = new Float64Array(SAMPLES_PER_PROCESS)
        perSocket.fill(0)
        lastMin = 0
        console.log(JSON.stringify({ reset: true }))
      } else if (command === 'count') {
        console.log(JSON.stringify({ received }))
      } else if (command === 'report') {
        const report: SubscriberReport = { received, lastAt, samples: [...samples.subarray(0, Math.min(seen, SAMPLES_PER_PROCESS))], closes }
        console.log(JSON.stringify(report))
        process.exit(0)
      }
    }
  }
}

/** A subscriber process driven over stdin/stdout, one JSON line per answer. */
export class Subscribers {
  private lines: string[] = []
  private waiters: Array<() => void> = []
  /** Readings received by this process's slowest socket. */
  min = 0
  onProgress: () => void = () => {}
  private constructor(readonly child: Bun.Subprocess<'pipe', 'pipe', 'inherit'>) {
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      for await (const chunk of child.stdout) {
        buffer += decoder.decode(chunk, { stream: true })
        let newline: number
        while ((newline = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (line.startsWith('{"min":')) {
            this.min = (JSON.parse(line) as { min: number }).min
            this.onProgress()
            continue
          }
          this.lines.push(line)
          for (const wake of this.waiters.splice(0)) wake()
        }
      }
      for (const wake of this.waiters.splice(0)) wake()
    })()
  }

  /** A process of `count` sockets; with `keys`, at least ⌈count / SOCKETS_PER_KEY⌉ of them. */
  static async start(url: string, keys: string[], count: number, core: number | null): Promise<Subscribers> {
    const child = Bun.spawn(pinned([process.execPath, import.meta.path], core), {
      cwd: root,
      env: { ...process.env, FANOUT_URL: url, FANOUT_KEYS: keys.join(','), FANOUT_COUNT: String(count) },
      stdin: 'pipe', stdout: 'pipe', stderr: 'inherit',
    })
    track(child)
    const subscribers = new Subscribers(child)
    await subscribers.line()
    return subscribers
  }

  async line(): Promise<Record<string, unknown>> {
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null) throw new Error(`subscriber process exited with ${this.child.exitCode}`)
      const { promise, resolve: wake } = Promise.withResolvers<void>()
      this.waiters.push(wake)
      await promise
    }
    return JSON.parse(this.lines.shift()!) as Record<string, unknown>
  }

  async ask<T>(command: string): Promise<T> {
    this.child.stdin.write(`${command}\n`)
    this.child.stdin.flush()
    return (await this.line()) as T
  }
}

if (import.meta.main) await runSubscriberProcess()
