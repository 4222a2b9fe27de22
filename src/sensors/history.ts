// The memory feed: per topic a bounded ring of serialized readings with its seq and epoch, within
// a topic and a byte budget. Behind Redis it is the local cache of the shared feed (see `relay`).
import type { Delivered, Feed, FeedListener, Range } from './feed'

/** A topic nobody has published to for this long is forgotten. */
export const TOPIC_IDLE_MS = 24 * 60 * 60 * 1000

export interface HistoryOptions {
  /** Readings kept per topic (the contract asks for at least 1000). */
  historySize?: number
  /** Topics whose history is kept; past it the least recently published one is forgotten. */
  maxTopics?: number
  /** Bytes of readings kept over all topics (UTF-8 bytes of their JSON). */
  maxHistoryBytes?: number
  /** Forget a topic nobody has published to for this long. */
  idleMs?: number
  now?: () => number
}

const bytesOf = (frame: string) => Buffer.byteLength(frame, 'utf8')

/** One topic's unbroken history: a ring of serialized readings with contiguous seqs. */
class History {
  /** Seq of the newest reading; `startSeq` before the first. */
  seq: number
  bytes = 0
  /** When the newest reading was kept. */
  publishedAt = 0
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
      freed = bytesOf(this.ring[this.head]!)
      this.ring[this.head] = frame
      this.head = (this.head + 1) % this.capacity
    }
    this.bytes += bytesOf(frame) - freed
    return freed
  }

  /** Drops the oldest reading (to stay within the byte budget); returns the bytes freed. */
  shift(): number {
    if (this.size <= 1) return 0
    const freed = bytesOf(this.ring[this.head]!)
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

const nobody: FeedListener = { deliver() {}, restart() {}, follows: () => false }

export interface MemoryFeedMode {
  /**
   * The local cache of a shared feed: forgetting a topic here loses nothing (the shared history
   * keeps it), so nobody is told; the shared feed names the epochs (`expect`, `relay`).
   */
  cache?: boolean
}

export class MemoryFeed implements Feed, Delivered {
  readonly historySize: number
  readonly maxTopics: number
  readonly maxHistoryBytes: number
  readonly idleMs: number
  readonly delivered: Delivered = this
  evictions = 0
  private readonly now: () => number
  private readonly cache: boolean
  /** Histories in least-recently-published order (a Map keeps insertion order). */
  private readonly histories = new Map<string, History>()
  /**
   * The epoch told to subscribers of a topic without a history here, which its first reading
   * starts in; at most `maxTopics` of them, the oldest forgotten first (a subscription creates no history).
   */
  private readonly promised = new Map<string, string>()
  private historyBytes = 0
  private listener: FeedListener = nobody

  constructor({ historySize = 1000, maxTopics = 1000, maxHistoryBytes = 256 * 1024 * 1024, idleMs = TOPIC_IDLE_MS, now = Date.now }: HistoryOptions = {}, { cache = false }: MemoryFeedMode = {}) {
    if (!(historySize >= 1 && maxTopics >= 1 && maxHistoryBytes >= 1 && idleMs >= 1)) throw new RangeError('historySize, maxTopics, maxHistoryBytes and idleMs must be ≥ 1')
    this.historySize = historySize
    this.maxTopics = maxTopics
    this.maxHistoryBytes = maxHistoryBytes
    this.idleMs = idleMs
    this.now = now
    this.cache = cache
  }

  get topics(): number {
    return this.histories.size
  }

  listen(listener: FeedListener): void {
    this.listener = listener
  }

  close(): void {}

  publish(topic: string, head: string, tail: string): { seq: number; epoch: string } {
    const now = this.forgetIdle()
    const history = this.historyOf(topic)
    // Least recently published first: re-inserting moves the topic to the end.
    this.histories.delete(topic)
    this.histories.set(topic, history)
    const seq = history.seq + 1
    const frame = head + seq + tail
    this.append(history, frame, now)
    this.listener.deliver(topic, history.epoch, seq, frame)
    return { seq, epoch: history.epoch }
  }

  /**
   * A frame the shared feed numbered, in seq order per topic: kept and delivered unless it is
   * already here. A gap or a new epoch starts the topic afresh.
   */
  relay(topic: string, epoch: string, seq: number, frame: string): void {
    const now = this.forgetIdle()
    let history = this.histories.get(topic)
    if (history && history.epoch === epoch && seq <= history.seq) return
    if (!history || history.epoch !== epoch || seq !== history.seq + 1) {
      const told = history?.epoch ?? this.promised.get(topic)
      if (history) this.drop(history)
      history = this.start(topic, epoch, seq - 1)
      if (told !== undefined && told !== epoch) this.listener.restart(topic, epoch)
    } else {
      this.histories.delete(topic)
      this.histories.set(topic, history)
    }
    this.append(history, frame, now)
    this.listener.deliver(topic, epoch, seq, frame)
  }

  /** The epoch of the topic's history, or the one its first reading will start in; creates no history. */
  epoch(topic: string): string {
    this.forgetIdle()
    return this.histories.get(topic)?.epoch ?? this.promise(topic, this.promised.get(topic) ?? crypto.randomUUID())
  }

  /**
   * The shared feed's epoch of a topic, as just told to a subscriber here: a history kept here
   * in another epoch is stale (the shared one was lost meanwhile), and its followers learn it now.
   */
  expect(topic: string, epoch: string): void {
    const history = this.histories.get(topic)
    if (history?.epoch === epoch) return
    if (history) {
      this.drop(history)
      this.listener.restart(topic, epoch)
    }
    this.promise(topic, epoch)
  }

  range(topic: string, since: number, limit: number): Range {
    this.forgetIdle()
    const history = this.histories.get(topic)
    if (!history) return { epoch: null, frames: [], first: 1, last: 0 }
    return { epoch: history.epoch, frames: history.after(since, limit), first: history.firstSeq, last: history.seq }
  }

  latest(): string[] {
    this.forgetIdle()
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

  /** The topic's history, started when it has none: in the epoch its subscribers were told, else a new one. */
  private historyOf(topic: string): History {
    const history = this.histories.get(topic)
    if (history) return history
    const promised = this.promised.get(topic)
    const started = this.start(topic, promised ?? crypto.randomUUID(), 0)
    // Nothing promised (or forgotten since): whoever follows the topic must learn seqs start again.
    if (promised === undefined) this.listener.restart(topic, started.epoch)
    return started
  }

  private promise(topic: string, epoch: string): string {
    this.promised.delete(topic)
    while (this.promised.size >= this.maxTopics) this.promised.delete(this.promised.keys().next().value!)
    this.promised.set(topic, epoch)
    return epoch
  }

  private start(topic: string, epoch: string, startSeq: number): History {
    this.promised.delete(topic)
    while (this.histories.size >= this.maxTopics) this.forget(this.histories.values().next().value!)
    const history = new History(topic, this.historySize, epoch, startSeq)
    this.histories.set(topic, history)
    return history
  }

  private append(history: History, frame: string, now: number): void {
    const before = history.bytes
    history.push(frame)
    history.publishedAt = now
    this.historyBytes += history.bytes - before
    this.trim(history)
  }

  private drop(history: History): void {
    this.histories.delete(history.topic)
    this.historyBytes -= history.bytes
  }

  /**
   * Forgets a history to stay within the caps. Its followers here lost it: they are told the
   * epoch its next reading will start in. A cache forgets quietly (the shared feed may still have
   * it) but keeps the epoch its followers know, so a reading in another one (the shared feed
   * forgot the topic too) tells them the history started again.
   */
  private forget(history: History): void {
    this.drop(history)
    this.evictions++
    if (!this.listener.follows(history.topic)) return
    if (this.cache) this.promise(history.topic, history.epoch)
    else this.listener.restart(history.topic, this.promise(history.topic, crypto.randomUUID()))
  }

  /** Forgets the topics nobody published to for `idleMs` (the least recently published come first); returns now. */
  private forgetIdle(): number {
    const now = this.now()
    for (const history of this.histories.values()) {
      if (now - history.publishedAt <= this.idleMs) break
      this.forget(history)
    }
    return now
  }

  /** Keeps the byte budget: forget the least recently published topics, then thin `current` itself. */
  private trim(current: History): void {
    while (this.historyBytes > this.maxHistoryBytes && this.histories.size > 1) {
      const oldest = this.histories.values().next().value!
      if (oldest === current) break
      this.forget(oldest)
    }
    while (this.historyBytes > this.maxHistoryBytes && current.size > 1) this.historyBytes -= current.shift()
  }
}
