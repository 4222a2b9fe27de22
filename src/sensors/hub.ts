// The sensor hub: sockets and their subscriptions, fan-out through Bun's own pub/sub
// (`ws.subscribe`, `server.publish`) of whatever frames the feed delivers, slow consumers
// closed with 1013, and the counters the metrics read.
import type { Server, ServerWebSocket } from 'bun'
import { HttpError } from '../platform/errors'
import { chain, type Awaitable, type Feed, type FeedListener } from './feed'
import { MAX_DATA_BYTES, type SensorModel } from './model'
import { Recovery, type Replay } from './recovery'

/** What the hub needs of a socket: Bun's ServerWebSocket, whatever its data. */
export type Socket = Pick<ServerWebSocket<unknown>, 'send' | 'subscribe' | 'unsubscribe' | 'close' | 'getBufferedAmount' | 'readyState'>

export interface HubOptions {
  /** Bytes queued for one socket before it counts as too slow (also Bun's `backpressureLimit`). */
  backpressureLimit?: number
  now?: () => number
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

export class SensorHub implements FeedListener {
  readonly backpressureLimit: number
  private readonly now: () => number
  private readonly recovery: Recovery
  /** Who is subscribed to what, kept beside Bun's own topic table to find slow consumers. */
  private readonly subscribers = new Map<string, Set<Socket>>()
  private readonly sockets = new Set<Socket>()
  private server: Server<unknown> | null = null
  private closing = false

  /** Readings accepted (from HTTP, sockets and the simulator). */
  published = 0
  /** Reading frames not delivered to a subscriber because it could not keep up. */
  dropped = 0
  /** Sockets closed with 1013 for not keeping up. */
  slowConsumerCloses = 0
  /** Socket messages refused by the per-connection rate limit. */
  rateLimited = 0

  constructor(private readonly feed: Feed, { backpressureLimit = 1024 * 1024, now = Date.now }: HubOptions = {}) {
    if (!(backpressureLimit >= 1024)) throw new RangeError('backpressureLimit must be ≥ 1024')
    this.backpressureLimit = backpressureLimit
    this.now = now
    this.recovery = new Recovery(feed)
  }

  /** Open sockets. */
  get connections(): number {
    return this.sockets.size
  }

  get accepting(): boolean {
    return !this.closing
  }

  /** The server whose `publish` fans readings out; learnt from the first upgrade (no upgrade, nobody to deliver to). */
  attach(server: Server<unknown> | null | undefined): void {
    if (server) this.server = server
  }

  /**
   * Accepts a reading for `topic` (already validated); the feed numbers it and delivers it to
   * every subscriber. `data` must be a JSON object; it is serialized once and sent as is to everyone.
   */
  publish(topic: string, data: object): Awaitable<{ topic: string; seq: number }> {
    const json = JSON.stringify(data)
    if (utf8Length(json, MAX_DATA_BYTES) > MAX_DATA_BYTES) {
      throw new HttpError(413, `data is larger than ${MAX_DATA_BYTES} bytes of JSON`)
    }
    const published = this.feed.publish(topic, `{"topic":"${topic}","seq":`, `,"ts":"${new Date(this.now()).toISOString()}","data":${json}}`)
    return chain(published, ({ seq }) => {
      this.published++
      return { topic, seq }
    })
  }

  /** A frame from the feed, in seq order per topic: to every subscriber of its topic. */
  deliver(topic: string, epoch: string, seq: number, frame: string): void {
    const subscribers = this.subscribers.get(topic)
    if (subscribers && this.server) {
      // 0: dropped for at least one subscriber, which is over its backpressure limit.
      if (this.server.publish(topic, frame, false) === 0) this.closeSlow(subscribers)
    }
    this.recovery.delivered(topic, epoch, seq)
  }

  /** The history a topic's subscribers followed is gone: tell them seqs start again in a new epoch. */
  restart(topic: string, epoch: string): void {
    if (this.subscribers.get(topic)?.size && this.server) {
      this.server.publish(topic, JSON.stringify({ op: 'subscribed', topic, epoch, recovered: false }), false)
    }
  }

  follows(topic: string): boolean {
    return (this.subscribers.get(topic)?.size ?? 0) > 0
  }

  /** The readings after `since`, oldest first; an unknown topic has none and no epoch. */
  readings(topic: string, since: number, limit: number): Awaitable<{ epoch: string | null; items: SensorModel.Reading[] }> {
    return chain(this.feed.range(topic, since, limit), ({ epoch, frames }) => ({ epoch, items: frames.map((frame) => JSON.parse(frame) as SensorModel.Reading) }))
  }

  /** Every topic with a reading, with its newest one, by sensor id. */
  list(): Awaitable<SensorEntry[]> {
    return chain(this.feed.latest(), entries)
  }

  open(ws: Socket): void {
    this.sockets.add(ws)
  }

  /** Forgets a closed socket (Bun already dropped its subscriptions). */
  closed(ws: Socket, topics: Iterable<string>): void {
    this.sockets.delete(ws)
    for (const topic of topics) this.forget(ws, topic)
  }

  /**
   * Subscribes `ws` to `topic`, first replaying the readings after `since` when the history
   * still holds all of them (see recovery.ts). Returns false when the socket closed meanwhile,
   * or was closed for not keeping up with the replay.
   */
  subscribe(ws: Socket, topic: string, since?: number, epoch?: string): Awaitable<boolean> {
    return chain(this.recovery.replay(topic, since, epoch), (replay) => ws.readyState === 1 && this.join(ws, topic, replay))
  }

  unsubscribe(ws: Socket, topic: string): void {
    ws.unsubscribe(topic)
    this.forget(ws, topic)
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

  /** Sends the subscribed message and the replay, then joins the live topic, in one synchronous step. */
  private join(ws: Socket, topic: string, { frames, ...state }: Replay): boolean {
    if (!this.send(ws, JSON.stringify({ op: 'subscribed', topic, ...state }))) return false
    for (const frame of frames) if (!this.send(ws, frame)) return false
    ws.subscribe(topic)
    let set = this.subscribers.get(topic)
    if (!set) this.subscribers.set(topic, (set = new Set()))
    set.add(ws)
    return true
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
