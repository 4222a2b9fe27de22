// The contract between the hub and a feed, the part that numbers readings and keeps their
// history: in memory (history.ts) or shared by every instance through Redis (redis.ts).
import type { Awaitable } from '../platform/awaitable'

// A memory feed answers in the same synchronous step, a shared one with promises.
export { chain, type Awaitable } from '../platform/awaitable'

/** A topic's frames after some seq, with the oldest and newest seq the feed still has. */
export interface Range {
  epoch: string | null
  frames: string[]
  first: number
  last: number
}

/** Who a feed hands frames to: every frame published anywhere, in seq order per topic. */
export interface FeedListener {
  deliver(topic: string, epoch: string, seq: number, frame: string): void
  /** The topic's history started over in a new epoch: whoever followed it lost their place. */
  restart(topic: string, epoch: string): void
  /** Whether anyone here is subscribed to the topic. */
  follows(topic: string): boolean
}

/** The frames this instance has delivered, kept per topic; recovery joins a replay to them. */
export interface Delivered {
  /** Whether everything up to `seq` of `epoch` has been delivered here. */
  holds(topic: string, epoch: string, seq: number): boolean
  /** The frames delivered after `since`, oldest first; null when some of them are no longer kept. */
  newer(topic: string, epoch: string, since: number): string[] | null
}

export interface Feed {
  /** Readings kept per topic. */
  readonly historySize: number
  /** Topics with a history kept on this instance. */
  readonly topics: number
  /** Topic histories forgotten to stay within the caps. */
  readonly evictions: number
  readonly delivered: Delivered
  /** Appends a reading; `head` + seq + `tail` is its frame, which reaches every listener through `deliver`. */
  publish(topic: string, head: string, tail: string): Awaitable<{ seq: number; epoch: string }>
  /**
   * The epoch of a topic's history; for a topic without one, the epoch its first reading will
   * start in (so its subscribers and its publishers agree). Creates no history.
   */
  epoch(topic: string): Awaitable<string>
  /** Frames after `since`, oldest first, at most `limit`; an unknown topic has none and a null epoch. */
  range(topic: string, since: number, limit: number): Awaitable<Range>
  /** The newest frame of every topic. */
  latest(): Awaitable<string[]>
  /** Hands every frame to `listener` from now on; `lost` when frames can no longer arrive (the connection dropped). */
  listen(listener: FeedListener, lost?: () => void): Awaitable<void>
  close(): void
}
