// The sensor hub: per-topic sequence numbers, epochs and bounded histories, and
// fan-out through Bun's own pub/sub (`ws.subscribe`, `server.publish`). It also
// keeps the counters a metrics module reads, and closes slow consumers with 1013.
import type { Server, ServerWebSocket } from 'bun'
import { HttpError } from '../platform/errors'
import type { FeedBackend } from './cluster'
import { MAX_DATA_BYTES, type SensorModel } from './model'

/** What the hub needs of a socket: Bun's ServerWebSocket, whatever its data. */
export type Socket = Pick<ServerWebSocket<unknown>, 'send' | 'subscribe' | 'unsubscribe' | 'close' | 'getBufferedAmount' | 'readyState'>

export interface HubOptions {
  /** Readings kept per topic (the contract asks for at least 1000). */
  historySize?: number
  /** Topics whose history is kept; past it the least recently published one is forgotten. */
  maxTopics?: number
  /** Bytes of readings kept over all topics (approximate: UTF-16 code units of the JSON). */
  maxHistoryBytes?: number
  /** Bytes queued for one socket before it counts as too slow (also Bun's `backpressureLimit`). */
  backpressureLimit?: number
  now?: () => number
  /** A store shared by every instance (Redis); without one the hub is the source of truth itself. */
  backend?: FeedBackend
}

export interface Replay {
  epoch: string
  recovered: boolean
  /** The frames to send, oldest first. */
  frames: string[]
}

/** One topic's unbroken history: a ring of serialized readings with contiguous seqs. */
class History {
  /** Seq of the newest reading; `startSeq` before the first. */
  seq: number
  bytes = 0
  private ring: string[] = []
  /** Index in `ring` of the oldest reading kept. */
  private head = 0
  size = 0

  constructor(readonly topic: string, private readonly capacity: number, readonly epoch: string = crypto.randomUUID(), startSeq = 0) {
    this.seq = startSeq
  }

  get firstSeq(): number {
    return this.seq - this.size + 1
  }

  /** Appends a frame; returns the bytes it freed by pushing the oldest out. */
  push(frame: string): number {
    this.seq++
    let freed = 0
    if (this.size < this.capacity) {
      this.ring[(this.head + this.size) % this.capacity] = frame
      this.size++
    } else {
      freed = this.ring[this.head]!.length
      this.ring[this.head] = frame
      this.head = (this.head + 1) % this.capacity
    }
    this.bytes += frame.length - freed
    return freed
  }

  /** Drops the oldest reading (to stay within the byte budget); returns the bytes freed. */
  shift(): number {
    if (this.size <= 1) return 0
    const freed = this.ring[this.head]!.length
    this.ring[this.head] = ''
    this.head = (this.head + 1) % this.capacity
    this.size--
    this.bytes -= freed
    return freed
  }

  /** The frames with a seq greater than `since`, oldest first, at most `limit`. */
  after(since: number, limit = Infinity): string[] {
    const skip = Math.max(0, since - this.firstSeq + 1)
    const count = Math.min(this.size - skip, limit)
    const out: string[] = []
    for (let i = 0; i < count; i++) out.push(this.ring[(this.head + skip + i) % this.capacity]!)
    return out
  }

  last(): string | undefined {
    return this.size === 0 ? undefined : this.ring[(this.head + this.size - 1) % this.capacity]
  }
}

export interface SensorEntry {
  sensor_id: string
  topic: string
  last: SensorModel.Reading
}

/** Newest frames as the sensor list, by sensor id. */
function entries(frames: string[]): SensorEntry[] {
  return frames
    .map((frame) => JSON.parse(frame) as SensorModel.Reading)
    .map((last) => ({ sensor_id: last.topic.slice('sensors/'.length), topic: last.topic, last }))
    .sort((a, b) => (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0))
}

const encoder = new TextEncoder()

/** Bytes of UTF-8 in `text`, without encoding it when the length alone decides. */
function utf8Length(text: string, limit: number): number {
  if (text.length > limit || text.length * 3 <= limit) return text.length
  return encoder.encode(text).byteLength
}

export class SensorHub {
  readonly historySize: number
  readonly maxTopics: number
  readonly maxHistoryBytes: number
  readonly backpressureLimit: number
  private readonly now: () => number
  /** Histories in least-recently-published order (a Map keeps insertion order). */
  private readonly histories = new Map<string, History>()
  private historyBytes = 0
  /** Who is subscribed to what, kept beside Bun's own topic table to find slow consumers. */
  private readonly subscribers = new Map<string, Set<Socket>>()
  private readonly sockets = new Set<Socket>()
  private server: Server<unknown> | null = null
  private closing = false

  private readonly backend: FeedBackend | undefined
  /** Subscriptions waiting for the live feed to bring a topic up to a seq (cluster mode). */
  private readonly waiters = new Map<string, Array<{ epoch: string; seq: number; resolve: (reached: boolean) => void }>>()

  /** Readings accepted (from HTTP, sockets and the simulator). */
  published = 0
  /** Reading frames not delivered to a subscriber because it could not keep up. */
  dropped = 0
  /** Sockets closed with 1013 for not keeping up. */
  slowConsumerCloses = 0
  /** Socket messages refused by the per-connection rate limit. */
  rateLimited = 0
  /** Topic histories forgotten to stay within the caps. */
  evictions = 0

  constructor({ historySize = 1000, maxTopics = 1000, maxHistoryBytes = 256 * 1024 * 1024, backpressureLimit = 1024 * 1024, now = Date.now, backend }: HubOptions = {}) {
    this.backend = backend
    if (!(historySize >= 1 && maxTopics >= 1 && maxHistoryBytes >= 1 && backpressureLimit >= 1024)) {
      throw new RangeError('historySize, maxTopics and maxHistoryBytes must be ≥ 1, backpressureLimit ≥ 1024')
    }
    this.historySize = historySize
    this.maxTopics = maxTopics
    this.maxHistoryBytes = maxHistoryBytes
    this.backpressureLimit = backpressureLimit
    this.now = now
  }

  /** Open sockets. */
  get connections(): number {
    return this.sockets.size
  }

  /** Topics with a history kept. */
  get topics(): number {
    return this.histories.size
  }

  get accepting(): boolean {
    return !this.closing
  }

  /** The server whose `publish` fans readings out; learnt from the first upgrade (no upgrade, nobody to deliver to). */
  attach(server: Server<unknown> | null | undefined): void {
    if (server) this.server = server
  }

  /**
   * Accepts a reading for `topic` (already validated) and delivers it to every subscriber.
   * `data` must be a JSON object; it is serialized once and sent as is to everyone.
   */
  publish(topic: string, data: object): { topic: string; seq: number } | Promise<{ topic: string; seq: number }> {
    const json = JSON.stringify(data)
    if (utf8Length(json, MAX_DATA_BYTES) > MAX_DATA_BYTES) {
      throw new HttpError(413, `data is larger than ${MAX_DATA_BYTES} bytes of JSON`)
    }
    if (this.backend) return this.publishShared(this.backend, topic, json)
    const history = this.historyOf(topic)
    // Least recently published first: re-inserting moves the topic to the end.
    this.histories.delete(topic)
    this.histories.set(topic, history)
    const seq = history.seq + 1
    const frame = `{"topic":"${topic}","seq":${seq},"ts":"${new Date(this.now()).toISOString()}","data":${json}}`
    const before = history.bytes
    history.push(frame)
    this.historyBytes += history.bytes - before
    this.published++
    this.trim(history)
    this.fanOut(topic, frame)
    return { topic, seq }
  }

  /** Cluster mode: the shared store assigns seq and epoch; the frame comes back to every instance through `deliver`. */
  private async publishShared(backend: FeedBackend, topic: string, json: string): Promise<{ topic: string; seq: number }> {
    const { seq } = await backend.publish(topic, `{"topic":"${topic}","seq":`, `,"ts":"${new Date(this.now()).toISOString()}","data":${json}}`)
    this.published++
    return { topic, seq }
  }

  /**
   * Cluster mode: a frame from the shared feed (published on any instance), in seq order per topic.
   * The local history is a cache of the shared one; a gap or a new epoch starts it afresh.
   */
  deliver(topic: string, epoch: string, seq: number, frame: string): void {
    let history = this.histories.get(topic)
    if (history && history.epoch === epoch && seq <= history.seq) return
    if (!history || history.epoch !== epoch || seq !== history.seq + 1) {
      const newEpoch = history !== undefined && history.epoch !== epoch
      if (history) {
        this.histories.delete(topic)
        this.historyBytes -= history.bytes
      }
      while (this.histories.size >= this.maxTopics) this.evictOldest()
      history = new History(topic, this.historySize, epoch, seq - 1)
      const subscribers = this.subscribers.get(topic)
      if (newEpoch && subscribers?.size && this.server) {
        this.server.publish(topic, JSON.stringify({ op: 'subscribed', topic, epoch, recovered: false }), false)
      }
    } else {
      this.histories.delete(topic)
    }
    this.histories.set(topic, history)
    const before = history.bytes
    history.push(frame)
    this.historyBytes += history.bytes - before
    this.trim(history)
    this.fanOut(topic, frame)
    this.wake(topic, epoch, seq)
  }

  private fanOut(topic: string, frame: string): void {
    const subscribers = this.subscribers.get(topic)
    if (subscribers && this.server) {
      // 0: dropped for at least one subscriber, which is over its backpressure limit.
      if (this.server.publish(topic, frame, false) === 0) this.closeSlow(subscribers)
    }
  }

  /** The readings after `since`, oldest first; an unknown topic has none and no epoch. */
  readings(topic: string, since: number, limit: number): { epoch: string | null; items: SensorModel.Reading[] } | Promise<{ epoch: string | null; items: SensorModel.Reading[] }> {
    if (this.backend) {
      return this.backend.range(topic, since, limit).then(({ epoch, frames }) => ({ epoch, items: frames.map((frame) => JSON.parse(frame) as SensorModel.Reading) }))
    }
    const history = this.histories.get(topic)
    if (!history) return { epoch: null, items: [] }
    return { epoch: history.epoch, items: history.after(since, limit).map((frame) => JSON.parse(frame) as SensorModel.Reading) }
  }

  /** Every topic with a reading, with its newest one, by sensor id. */
  list(): SensorEntry[] | Promise<SensorEntry[]> {
    if (this.backend) return this.backend.latest().then(entries)
    return entries([...this.histories.values()].map((history) => history.last()).filter((frame) => frame !== undefined))
  }

  // --- sockets ------------------------------------------------------------------

  open(ws: Socket): void {
    this.sockets.add(ws)
  }

  /** Forgets a closed socket (Bun already dropped its subscriptions). */
  closed(ws: Socket, topics: Iterable<string>): void {
    this.sockets.delete(ws)
    for (const topic of topics) this.forget(ws, topic)
  }

  /**
   * Subscribes `ws` to `topic`, first replaying the readings after `since` when the
   * history still holds all of them. Replay and subscription happen in one synchronous
   * step, so no reading published meanwhile is missed or sent twice.
   * Returns false when the socket was closed for not keeping up with the replay.
   */
  subscribe(ws: Socket, topic: string, since?: number, epoch?: string): boolean | Promise<boolean> {
    if (this.backend) return this.subscribeShared(this.backend, ws, topic, since, epoch)
    return this.attachSocket(ws, topic, this.replay(topic, since, epoch))
  }

  /** Sends the subscribed message and the replay, then joins the live topic, in one synchronous step. */
  private attachSocket(ws: Socket, topic: string, { frames, ...state }: Replay): boolean {
    if (!this.send(ws, JSON.stringify({ op: 'subscribed', topic, ...state }))) return false
    for (const frame of frames) if (!this.send(ws, frame)) return false
    ws.subscribe(topic)
    let set = this.subscribers.get(topic)
    if (!set) this.subscribers.set(topic, (set = new Set()))
    set.add(ws)
    return true
  }

  /**
   * Cluster mode: replay from the shared history, then go live. The live feed may
   * not yet have brought here what the shared history already holds, so wait
   * until it has: then the frames after that come from the local cache, and
   * everything later arrives live, each exactly once.
   */
  private async subscribeShared(backend: FeedBackend, ws: Socket, topic: string, since?: number, epoch?: string): Promise<boolean> {
    const current = await backend.epoch(topic)
    if (since === undefined || (epoch !== undefined && epoch !== current)) {
      return ws.readyState === 1 && this.attachSocket(ws, topic, { epoch: current, recovered: since === undefined, frames: [] })
    }
    const range = await backend.range(topic, since, this.historySize)
    const complete = range.epoch === current && since >= range.first - 1 && since <= range.last && range.frames.length === range.last - since
    if (!complete) return ws.readyState === 1 && this.attachSocket(ws, topic, { epoch: current, recovered: false, frames: [] })
    const reached = range.last === 0 || (await this.reached(topic, current, range.last))
    if (ws.readyState !== 1) return false
    const history = this.histories.get(topic)
    const newer = reached && history && history.epoch === current ? history.after(range.last) : []
    const contiguous = reached && (newer.length === 0 || history!.firstSeq <= range.last + 1)
    return this.attachSocket(ws, topic, contiguous
      ? { epoch: current, recovered: true, frames: [...range.frames, ...newer] }
      : { epoch: current, recovered: false, frames: [] })
  }

  /** Resolves true once the local cache of `topic` holds `seq` of `epoch`; false after a second without it. */
  private reached(topic: string, epoch: string, seq: number): Promise<boolean> {
    const history = this.histories.get(topic)
    if (history && history.epoch === epoch && history.seq >= seq) return Promise.resolve(true)
    const { promise, resolve } = Promise.withResolvers<boolean>()
    const waiting = this.waiters.get(topic) ?? []
    const waiter = { epoch, seq, resolve }
    waiting.push(waiter)
    this.waiters.set(topic, waiting)
    setTimeout(() => {
      const list = this.waiters.get(topic)
      if (list?.includes(waiter)) list.splice(list.indexOf(waiter), 1)
      resolve(false)
    }, 1000).unref()
    return promise
  }

  private wake(topic: string, epoch: string, seq: number): void {
    const waiting = this.waiters.get(topic)
    if (!waiting) return
    const still = waiting.filter((waiter) => {
      if (waiter.epoch !== epoch || waiter.seq > seq) return true
      waiter.resolve(true)
      return false
    })
    if (still.length) this.waiters.set(topic, still)
    else this.waiters.delete(topic)
  }

  unsubscribe(ws: Socket, topic: string): void {
    ws.unsubscribe(topic)
    this.forget(ws, topic)
  }

  /** What a subscription with `since`/`epoch` gets: the state to report and the frames to replay. */
  replay(topic: string, since?: number, epoch?: string): Replay {
    const history = this.historyOf(topic)
    if (since === undefined) return { epoch: history.epoch, recovered: true, frames: [] }
    const complete = (epoch === undefined || epoch === history.epoch) && since >= history.firstSeq - 1 && since <= history.seq
    return { epoch: history.epoch, recovered: complete, frames: complete ? history.after(since) : [] }
  }

  /** Sends one frame to one socket; a socket too far behind to take it is closed with 1013. */
  send(ws: Socket, frame: string): boolean {
    if (ws.send(frame, false) !== 0) return true
    if (ws.readyState === 1) {
      this.dropped++
      this.slow(ws)
    }
    return false
  }

  /** Closes every socket with 1001 (going away) and refuses new ones; for shutdown, before `server.stop()`. */
  shutdown(): void {
    this.closing = true
    this.disconnect(1001, 'server shutting down')
  }

  /** Closes every socket but keeps accepting new ones (clients reconnect and resume with since/epoch). */
  disconnect(code = 1012, reason = 'service restart'): void {
    for (const ws of [...this.sockets]) ws.close(code, reason)
  }

  // --- internals ----------------------------------------------------------------

  /** The topic's history, started (with a new epoch) when it has none. */
  private historyOf(topic: string): History {
    let history = this.histories.get(topic)
    if (history) return history
    while (this.histories.size >= this.maxTopics) this.evictOldest()
    history = new History(topic, this.historySize)
    this.histories.set(topic, history)
    const subscribers = this.subscribers.get(topic)
    if (subscribers?.size && this.server) {
      // The history its subscribers followed was evicted: tell them seqs start again in a new epoch.
      this.server.publish(topic, JSON.stringify({ op: 'subscribed', topic, epoch: history.epoch, recovered: false }), false)
    }
    return history
  }

  private evictOldest(): void {
    const oldest = this.histories.values().next().value
    if (!oldest) return
    this.histories.delete(oldest.topic)
    this.historyBytes -= oldest.bytes
    this.evictions++
  }

  /** Keeps the byte budget: forget the least recently published topics, then thin `current` itself. */
  private trim(current: History): void {
    while (this.historyBytes > this.maxHistoryBytes && this.histories.size > 1) {
      const oldest = this.histories.values().next().value!
      if (oldest === current) break
      this.histories.delete(oldest.topic)
      this.historyBytes -= oldest.bytes
      this.evictions++
    }
    while (this.historyBytes > this.maxHistoryBytes && current.size > 1) this.historyBytes -= current.shift()
  }

  private forget(ws: Socket, topic: string): void {
    const set = this.subscribers.get(topic)
    if (!set) return
    set.delete(ws)
    if (set.size === 0) this.subscribers.delete(topic)
  }

  /** After a publish that was dropped for someone: close whoever is over the limit. */
  private closeSlow(subscribers: Set<Socket>): void {
    for (const ws of [...subscribers]) {
      if (ws.getBufferedAmount() >= this.backpressureLimit) {
        this.dropped++
        this.slow(ws)
      }
    }
  }

  private slow(ws: Socket): void {
    this.slowConsumerCloses++
    // Queued after what is already buffered, so a client that catches up sees every reading and then 1013.
    ws.close(1013, 'too slow: the server dropped readings for this connection')
  }
}
