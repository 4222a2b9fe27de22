// The sensor feed across instances, through Redis: one seq sequence and epoch per topic (a Lua
// script assigns them), the shared history in a Redis Stream (XADD ids are `<seq>-0`, so XRANGE
// replays by seq), the last reading per topic in a hash, and live fan-out over one pub/sub channel.
import { RedisClient } from 'bun'
import type { Delivered, Feed, FeedListener } from './feed'
import { MemoryFeed, type HistoryOptions } from './history'

const publishScript = `
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[2], epoch) end
local frame = ARGV[2] .. seq .. ARGV[3]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'f', frame)
redis.call('HSET', KEYS[4], ARGV[5], frame)
redis.call('PUBLISH', ARGV[6], epoch .. ' ' .. seq .. ' ' .. ARGV[5] .. ' ' .. frame)
return {seq, epoch}
`

type StreamEntry = [id: string, fields: string[]]

export class RedisFeed implements Feed {
  readonly historySize: number
  private subscriber: RedisClient | null = null
  private readonly channel: string
  /** The live frames delivered here, kept as the memory feed keeps its own: replays join them. */
  private readonly cache: MemoryFeed

  /**
   * `url` opens the live-feed connection; it does not reconnect by itself, so a loss is
   * noticed at once (the caller closes sockets and listens again).
   */
  constructor(private readonly redis: RedisClient, private readonly url: string, private readonly prefix = 'taskmesh:', history: HistoryOptions = {}) {
    this.channel = `${prefix}sensors:feed`
    this.cache = new MemoryFeed(history)
    this.historySize = this.cache.historySize
  }

  get topics(): number {
    return this.cache.topics
  }

  get evictions(): number {
    return this.cache.evictions
  }

  get delivered(): Delivered {
    return this.cache
  }

  private keys(topic: string) {
    return { seq: `${this.prefix}sensors:seq:${topic}`, epoch: `${this.prefix}sensors:epoch:${topic}`, stream: `${this.prefix}sensors:stream:${topic}` }
  }

  /** Resolves once every instance will receive the frame, this one included, from the channel. */
  async publish(topic: string, head: string, tail: string): Promise<{ seq: number; epoch: string }> {
    const { seq, epoch, stream } = this.keys(topic)
    const reply = (await this.redis.send('EVAL', [publishScript, '4', seq, epoch, stream, `${this.prefix}sensors:latest`,
      crypto.randomUUID(), head, tail, String(this.historySize), topic, this.channel])) as [number, string]
    return { seq: Number(reply[0]), epoch: reply[1] }
  }

  async epoch(topic: string): Promise<string> {
    const key = this.keys(topic).epoch
    // SET NX GET: the existing epoch, or ours once it is stored.
    const previous = (await this.redis.send('SET', [key, crypto.randomUUID(), 'NX', 'GET'])) as string | null
    return previous ?? ((await this.redis.get(key)) as string)
  }

  async range(topic: string, since: number, limit: number) {
    const { seq, epoch, stream } = this.keys(topic)
    const [entries, oldest, last, current] = await Promise.all([
      this.redis.send('XRANGE', [stream, `(${since}-0`, '+', 'COUNT', String(limit)]) as Promise<StreamEntry[]>,
      this.redis.send('XRANGE', [stream, '-', '+', 'COUNT', '1']) as Promise<StreamEntry[]>,
      this.redis.get(seq),
      this.redis.get(epoch),
    ])
    const first = oldest[0] ? Number(oldest[0][0].split('-')[0]) : Number(last ?? 0) + 1
    return { epoch: current, frames: entries.map(([, fields]) => fields[1]!), first, last: Number(last ?? 0) }
  }

  async latest(): Promise<string[]> {
    const all = (await this.redis.send('HGETALL', [`${this.prefix}sensors:latest`])) as Record<string, string> | string[]
    return Array.isArray(all) ? all.filter((_, i) => i % 2 === 1) : Object.values(all)
  }

  async listen(listener: FeedListener, lost: () => void = () => {}): Promise<void> {
    this.close()
    this.cache.listen(listener)
    // A subscribed connection can do nothing else: a second one carries the live feed.
    this.subscriber = new RedisClient(this.url, { autoReconnect: false, connectionTimeout: 2000 })
    await this.subscriber.connect()
    // Readings published while it is down never reach this instance: its sockets must resubscribe with since.
    this.subscriber.onclose = () => lost()
    await this.subscriber.subscribe(this.channel, (message) => {
      const a = message.indexOf(' ')
      const b = message.indexOf(' ', a + 1)
      const c = message.indexOf(' ', b + 1)
      this.cache.relay(message.slice(b + 1, c), message.slice(0, a), Number(message.slice(a + 1, b)), message.slice(c + 1))
    })
  }

  close(): void {
    if (!this.subscriber) return
    this.subscriber.onclose = null
    this.subscriber.close()
    this.subscriber = null
  }
}
