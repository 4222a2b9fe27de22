// The sensor feed across instances, through Redis: one seq sequence and epoch per topic (a Lua
// script assigns them), the shared history in a Redis Stream (XADD ids are `<seq>-0`, so XRANGE
// replays by seq), the last reading per topic in a hash, and live fan-out over one pub/sub channel.
// Topics are capped cluster-wide: a sorted set of last-published times names the ones to forget
// (the least recently published past `maxTopics`, and any idle past `idleMs`, when the keys of a
// topic expire by themselves too).
import { RedisClient } from 'bun'
import type { Delivered, Feed, FeedListener } from './feed'
import { MemoryFeed, type HistoryOptions } from './history'

// Redis' own clock, so every instance agrees on which topic is the oldest.
const clock = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`

// KEYS seq, epoch, stream, latest, topics, promised, promised-at; ARGV new epoch, head, tail,
// history size, topic, channel, max topics, idle ms, key base. The keys of forgotten topics are
// built here from the key base: one instance of Redis, not a cluster of shards.
const publishScript = `${clock}
local topic = ARGV[5]
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  -- A new history: in the epoch its subscribers were told, if any.
  redis.call('DEL', KEYS[1], KEYS[3])
  epoch = redis.call('HGET', KEYS[6], topic) or ARGV[1]
  redis.call('HDEL', KEYS[6], topic)
  redis.call('ZREM', KEYS[7], topic)
  redis.call('SET', KEYS[2], epoch)
end
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. seq .. ARGV[3]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'f', frame)
redis.call('HSET', KEYS[4], topic, frame)
-- Strictly after the latest publish, even within one millisecond, so "least recently" is never a tie.
local latest = redis.call('ZRANGE', KEYS[5], -1, -1, 'WITHSCORES')[2]
local score = now
if latest and tonumber(latest) >= now then score = tonumber(latest) + 0.001 end
redis.call('ZADD', KEYS[5], string.format('%.3f', score), topic)
local idle = tonumber(ARGV[8])
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], idle) end
local forget = redis.call('ZRANGE', KEYS[5], '-inf', '(' .. (now - idle), 'BYSCORE')
local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
if excess > #forget then forget = redis.call('ZRANGE', KEYS[5], 0, excess - 1) end
for _, name in ipairs(forget) do
  redis.call('DEL', ARGV[9] .. 'seq:' .. name, ARGV[9] .. 'epoch:' .. name, ARGV[9] .. 'stream:' .. name)
  redis.call('HDEL', KEYS[4], name)
  redis.call('ZREM', KEYS[5], name)
end
redis.call('PUBLISH', ARGV[6], epoch .. ' ' .. seq .. ' ' .. topic .. ' ' .. frame)
return {seq, epoch}
`

// KEYS epoch, promised, promised-at; ARGV topic, new epoch, max topics, idle ms. A topic nobody
// published to gets the epoch its history will start in, kept for at most max topics.
const epochScript = `
local epoch = redis.call('GET', KEYS[1])
if epoch then return epoch end
epoch = redis.call('HGET', KEYS[2], ARGV[1])
if epoch then return epoch end
${clock}
epoch = ARGV[2]
redis.call('HSET', KEYS[2], ARGV[1], epoch)
redis.call('ZADD', KEYS[3], now, ARGV[1])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
if excess > 0 then
  for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess - 1)) do
    redis.call('HDEL', KEYS[2], name)
    redis.call('ZREM', KEYS[3], name)
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return epoch
`

// KEYS topics, latest; ARGV max topics, idle ms. The newest frames of the topics still kept.
const latestScript = `${clock}
local topics = redis.call('ZRANGE', KEYS[1], '+inf', now - tonumber(ARGV[2]), 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[1]))
if #topics == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(topics))
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
    this.cache = new MemoryFeed(history, { cache: true })
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
    const base = `${this.prefix}sensors:`
    return {
      seq: `${base}seq:${topic}`, epoch: `${base}epoch:${topic}`, stream: `${base}stream:${topic}`,
      latest: `${base}latest`, topics: `${base}topics`, promised: `${base}promised`, promisedAt: `${base}promised-at`,
    }
  }

  /** Resolves once every instance will receive the frame, this one included, from the channel. */
  async publish(topic: string, head: string, tail: string): Promise<{ seq: number; epoch: string }> {
    const keys = this.keys(topic)
    const reply = (await this.redis.send('EVAL', [publishScript, '7', keys.seq, keys.epoch, keys.stream, keys.latest, keys.topics, keys.promised, keys.promisedAt,
      crypto.randomUUID(), head, tail, String(this.historySize), topic, this.channel, String(this.cache.maxTopics), String(this.cache.idleMs), `${this.prefix}sensors:`])) as [number, string]
    return { seq: Number(reply[0]), epoch: reply[1] }
  }

  async epoch(topic: string): Promise<string> {
    const { epoch, promised, promisedAt } = this.keys(topic)
    const current = (await this.redis.send('EVAL', [epochScript, '3', epoch, promised, promisedAt,
      topic, crypto.randomUUID(), String(this.cache.maxTopics), String(this.cache.idleMs)])) as string
    this.cache.expect(topic, current)
    return current
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
    const { topics, latest } = this.keys('')
    const frames = (await this.redis.send('EVAL', [latestScript, '2', topics, latest, String(this.cache.maxTopics), String(this.cache.idleMs)])) as Array<string | null>
    return frames.filter((frame) => typeof frame === 'string')
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
