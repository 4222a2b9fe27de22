// The sockets each API key holds open on every instance together, in Redis: one sorted set per key
// whose members are the open sockets' slots, scored by when each lapses. An instance reserves a
// slot before it upgrades (atomically: the count and the add are one script), renews the slots of
// its open sockets while they stay open, and frees a slot when its socket closes. A slot whose
// upgrade never opened a socket, or of an instance that died, lapses by itself within SLOT_TTL_MS.
import type { RedisClient } from 'bun'

/** How long a slot stands without being renewed; open sockets renew theirs every third of it. */
export const SLOT_TTL_MS = 30_000

// Redis' own clock, so every instance agrees on which slots have lapsed.
const clock = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`

// KEYS slots of a key; ARGV max, ttl ms, slot. 1 when the slot was reserved, 0 when the key holds max.
const reserveScript = `${clock}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
`

// KEYS slots of a key; ARGV ttl ms, then the slots still open (only those still held are renewed).
const renewScript = `${clock}
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 0
`

export class RedisSocketSlots {
  /** Slots this instance holds, by key id. */
  private readonly held = new Map<string, Set<string>>()
  private timer: ReturnType<typeof setInterval> | null = null

  constructor(private readonly redis: RedisClient, private readonly prefix: string, private readonly ttlMs = SLOT_TTL_MS) {}

  private keyOf(keyId: string): string {
    return `${this.prefix}sockets:${keyId}`
  }

  /** A slot for one more socket of `keyId`, or null when the key holds `max` open on all instances together. */
  async reserve(keyId: string, max: number): Promise<string | null> {
    const slot = crypto.randomUUID()
    const reserved = await this.redis.send('EVAL', [reserveScript, '1', this.keyOf(keyId), String(max), String(this.ttlMs), slot])
    return reserved === 1 ? slot : null
  }

  /** The socket of a reserved slot opened: its slot is renewed until it closes. */
  opened(keyId: string, slot: string): void {
    let slots = this.held.get(keyId)
    if (!slots) this.held.set(keyId, (slots = new Set()))
    slots.add(slot)
    if (!this.timer) {
      this.timer = setInterval(() => this.renew(), Math.max(1, Math.floor(this.ttlMs / 3)))
      this.timer.unref()
    }
  }

  /** Frees a slot: its socket closed, or its upgrade did not happen. */
  release(keyId: string, slot: string): void {
    const slots = this.held.get(keyId)
    if (slots?.delete(slot)) {
      if (slots.size === 0) this.held.delete(keyId)
      if (this.held.size === 0) this.stop()
    }
    // Best effort: a slot Redis did not hear about lapses by itself.
    this.redis.send('ZREM', [this.keyOf(keyId), slot]).catch(() => {})
  }

  /** Stops renewing: every slot this instance holds lapses within the TTL. */
  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  private renew(): void {
    for (const [keyId, slots] of this.held) {
      this.redis.send('EVAL', [renewScript, '1', this.keyOf(keyId), String(this.ttlMs), ...slots]).catch(() => {})
    }
  }
}
