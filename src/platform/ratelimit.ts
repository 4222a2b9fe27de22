// Token-bucket rate limiting per API key (per client IP when anonymous), in
// memory by default or in Redis (one atomic script call) shared by every instance.
import type { RedisClient } from 'bun'
import type { RateLimit } from '../config'
import { isUnavailable } from './errors'

export interface Verdict {
  allowed: boolean
  /** Whole tokens left after this request. */
  remaining: number
  /** Seconds until the bucket is full again. */
  resetSeconds: number
  /** Seconds until one token is available (for Retry-After), when refused. */
  retryAfterSeconds: number
}

export interface Limiter {
  /** True when `take` answers at once (no I/O): the gateway's hook then never awaits. */
  readonly synchronous?: boolean
  take(identity: string, limit: RateLimit, now?: number): Verdict | Promise<Verdict>
  /** Whether `take` would allow a request now, without taking a token or creating a bucket. */
  peek(identity: string, limit: RateLimit, now?: number): Verdict | Promise<Verdict>
}

function verdict(tokens: number, allowed: boolean, limit: RateLimit): Verdict {
  return {
    allowed,
    remaining: Math.max(0, Math.floor(tokens)),
    resetSeconds: Math.max(0, Math.ceil((limit.burst - tokens) / limit.rate)),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / limit.rate)),
  }
}

interface Bucket {
  tokens: number
  at: number
  /** When the bucket, left alone, is full again: from then on it carries no information. */
  fullAt: number
}

/** Buckets in this process: exact, no I/O. Idle buckets are swept so memory stays bounded. */
export class MemoryLimiter implements Limiter {
  readonly synchronous = true
  private readonly buckets = new Map<string, Bucket>()
  private lastSweep = 0

  constructor(private readonly clock: () => number = Date.now) {}

  take(identity: string, limit: RateLimit, now = this.clock()): Verdict {
    this.sweep(now)
    const bucket = this.buckets.get(identity)
    const tokens = this.tokensOf(bucket, limit, now)
    const allowed = tokens >= 1
    const left = allowed ? tokens - 1 : tokens
    // Each bucket expires by its own limit: groups with different limits share the map.
    const fullAt = now + ((limit.burst - left) / limit.rate) * 1000
    if (bucket) {
      bucket.tokens = left
      bucket.at = now
      bucket.fullAt = fullAt
    } else {
      this.buckets.set(identity, { tokens: left, at: now, fullAt })
    }
    return verdict(left, allowed, limit)
  }

  peek(identity: string, limit: RateLimit, now = this.clock()): Verdict {
    const tokens = this.tokensOf(this.buckets.get(identity), limit, now)
    return verdict(tokens, tokens >= 1, limit)
  }

  private tokensOf(bucket: Bucket | undefined, limit: RateLimit, now: number): number {
    return bucket ? Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.rate) : limit.burst
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 10_000) return
    this.lastSweep = now
    for (const [identity, bucket] of this.buckets) if (now >= bucket.fullAt) this.buckets.delete(identity)
  }
}

// KEYS[1] bucket; ARGV rate, burst, now(ms), cost (0 peeks: nothing is written). Returns {allowed, tokens*1000}.
const script = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - cost; allowed = 1 end
if cost > 0 then
  redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
return {allowed, math.floor(tokens * 1000)}
`
const scriptSha = new Bun.CryptoHasher('sha1').update(script).digest('hex')

/** Client options for Redis on a request path: never queue a command while disconnected, fail at once. */
export const redisOptions = { enableOfflineQueue: false, autoReconnect: true, connectionTimeout: 2000 }

/**
 * Buckets in Redis: every instance draws from the same bucket, decided atomically
 * in one round trip. While Redis is unreachable each instance limits on its own
 * (an outage of the counter store must not take the API down with it).
 */
export class RedisLimiter implements Limiter {
  private readonly fallback: MemoryLimiter
  /** Set while Redis is unreachable; the service logs and counts it. */
  degraded = false

  constructor(private readonly redis: RedisClient, private readonly prefix = 'taskmesh:rl:', private readonly clock: () => number = Date.now) {
    this.fallback = new MemoryLimiter(clock)
  }

  take(identity: string, limit: RateLimit, now = this.clock()): Promise<Verdict> {
    return this.decide(identity, limit, now, 1)
  }

  peek(identity: string, limit: RateLimit, now = this.clock()): Promise<Verdict> {
    return this.decide(identity, limit, now, 0)
  }

  private async decide(identity: string, limit: RateLimit, now: number, cost: 0 | 1): Promise<Verdict> {
    try {
      const verdict = await this.shared(identity, limit, now, cost)
      this.degraded = false
      return verdict
    } catch (error) {
      if (!isUnavailable(error)) throw error
      this.degraded = true
      this.reconnect(now)
      return cost === 0 ? this.fallback.peek(identity, limit, now) : this.fallback.take(identity, limit, now)
    }
  }

  private lastReconnect = 0

  /** The client reconnects by itself after a drop, but not after a failed first connect: nudge it, once a second. */
  private reconnect(now: number): void {
    if (this.redis.connected || now - this.lastReconnect < 1000) return
    this.lastReconnect = now
    this.redis.connect().catch(() => {})
  }

  private async shared(identity: string, limit: RateLimit, now: number, cost: 0 | 1): Promise<Verdict> {
    const args = ['1', this.prefix + identity, String(limit.rate), String(limit.burst), String(now), String(cost)]
    let reply: unknown
    try {
      reply = await this.redis.send('EVALSHA', [scriptSha, ...args])
    } catch (error) {
      if (!String((error as Error).message).includes('NOSCRIPT')) throw error
      reply = await this.redis.send('EVAL', [script, ...args])
    }
    const [allowed, milliTokens] = reply as [number, number]
    return verdict(milliTokens / 1000, allowed === 1, limit)
  }
}

/** IETF draft-ietf-httpapi-ratelimit-headers: the policy and the current state. */
export function rateLimitHeaders(limit: RateLimit, result: Verdict): Record<string, string> {
  const window = Math.max(1, Math.ceil(limit.burst / limit.rate))
  const headers: Record<string, string> = {
    'ratelimit-policy': `"default";q=${limit.burst};w=${window}`,
    ratelimit: `"default";r=${result.remaining};t=${result.resetSeconds}`,
  }
  if (!result.allowed) headers['retry-after'] = String(result.retryAfterSeconds)
  return headers
}
