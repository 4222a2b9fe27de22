// The memory feed: per topic a bounded ring of serialized readings with its seq and epoch, within
// a topic and a byte budget. Behind Redis it is the local cache of the shared feed (see `relay`).
import type { Delivered, Feed, FeedListener, Range } from './feed'

export interface HistoryOptions {
  /** Readings kept per topic (the contract asks for at least 1000). */
  historySize?: number
  /** Topics whose history is kept; past it the least recently published one is forgotten. */
  maxTopics?: number
  /** Bytes of readings kept over all topics (approximate: UTF-16 code units of the JSON). */
  maxHistoryBytes?: number
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

const idle: FeedListener = { deliver() {}, restart() {} }

export class MemoryFeed implements Feed, Delivered {
  readonly historySize: number
  readonly maxTopics: number
  readonly maxHistoryBytes: number
  readonly delivered: Delivered = this
  evictions = 0
  /** Histories in least-recently-published order (a Map keeps insertion order). */
  private readonly histories = new Map<string, History>()
  private historyBytes = 0
  private listener: FeedListener = idle

  constructor({ historySize = 1000, maxTopics = 1000, maxHistoryBytes = 256 * 1024 * 1024 }: HistoryOptions = {}) {
    if (!(historySize >= 1 && maxTopics >= 1 && maxHistoryBytes >= 1)) throw new RangeError('historySize, maxTopics and maxHistoryBytes must be ≥ 1')
    this.historySize = historySize
    this.maxTopics = maxTopics
    this.maxHistoryBytes = maxHistoryBytes
  }

  get topics(): number {
    return this.histories.size
  }

  listen(listener: FeedListener): void {
    this.listener = listener
  }

  close(): void {}

  publish(topic: string, head: string, tail: string): { seq: number; epoch: string } {
    const history = this.historyOf(topic)
    // Least recently published first: re-inserting moves the topic to the end.
    this.histories.delete(topic)
    this.histories.set(topic, history)
    const seq = history.seq + 1
    const frame = head + seq + tail
    this.append(history, frame)
    this.listener.deliver(topic, history.epoch, seq, frame)
    return { seq, epoch: history.epoch }
  }

  /**
   * A frame the shared feed numbered, in seq order per topic: kept and delivered unless it is
   * already here. A gap or a new epoch starts the topic afresh.
   */
  relay(topic: string, epoch: string, seq: number, frame: string): void {
    let history = this.histories.get(topic)
    if (history && history.epoch === epoch && seq <= history.seq) return
    if (!history || history.epoch !== epoch || seq !== history.seq + 1) {
      const newEpoch = history !== undefined && history.epoch !== epoch
      if (history) {
        this.histories.delete(topic)
        this.historyBytes -= history.bytes
      }
      history = this.start(topic, epoch, seq - 1)
      if (newEpoch) this.listener.restart(topic, epoch)
    } else {
      this.histories.delete(topic)
      this.histories.set(topic, history)
    }
    this.append(history, frame)
    this.listener.deliver(topic, epoch, seq, frame)
  }

  epoch(topic: string): string {
    return this.historyOf(topic).epoch
  }

  range(topic: string, since: number, limit: number): Range {
    const history = this.histories.get(topic)
    if (!history) return { epoch: null, frames: [], first: 1, last: 0 }
    return { epoch: history.epoch, frames: history.after(since, limit), first: history.firstSeq, last: history.seq }
  }

  latest(): string[] {
    return [...this.histories.values()].map((history) => history.last()).filter((frame) => frame !== undefined)
  }

  holds(topic: string, epoch: string, seq: number): boolean {
    const history = this.histories.get(topic)
    return history !== undefined && history.epoch === epoch && history.seq >= seq
  }

  newer(topic: string, epoch: string, since: number): string[] | null {
    const history = this.histories.get(topic)
    // Forgotten since (or never seen): nothing newer was delivered here in this epoch.
    if (!history || history.epoch !== epoch) return []
    const frames = history.after(since)
    return frames.length === 0 || history.firstSeq <= since + 1 ? frames : null
  }

  /** The topic's history, started (with a new epoch) when it has none. */
  private historyOf(topic: string): History {
    const history = this.histories.get(topic)
    if (history) return history
    const started = this.start(topic, crypto.randomUUID(), 0)
    // A topic with subscribers but no history had it evicted: they must learn seqs start again.
    this.listener.restart(topic, started.epoch)
    return started
  }

  private start(topic: string, epoch: string, startSeq: number): History {
    while (this.histories.size >= this.maxTopics) this.evictOldest()
    const history = new History(topic, this.historySize, epoch, startSeq)
    this.histories.set(topic, history)
    return history
  }

  private append(history: History, frame: string): void {
    const before = history.bytes
    history.push(frame)
    this.historyBytes += history.bytes - before
    this.trim(history)
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
}
