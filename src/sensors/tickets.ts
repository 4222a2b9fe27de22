// One-use, short-lived tickets that stand in for an API key on the WebSocket upgrade
// (browsers cannot set headers there): in memory, or in Redis for several instances.
import type { RedisClient } from 'bun'
import type { Principal } from '../platform/keys'

type Awaitable<T> = T | Promise<T>

export interface Ticket {
  ticket: string
  /** Epoch milliseconds. */
  expiresAt: number
}

export interface TicketStore {
  /** A new ticket carrying `principal` (its key id, owner and scopes at this moment). */
  issue(principal: Principal): Awaitable<Ticket>
  /** The principal of a live ticket, which is used up by this call; null when unknown, used or expired. */
  redeem(ticket: string): Awaitable<Principal | null>
}

export interface MemoryTicketOptions {
  ttlMs?: number
  /** Outstanding tickets kept at most; the oldest are forgotten first. */
  max?: number
  now?: () => number
}

/** A ticket dies with the credential that minted it: at the ticket's TTL, or the credential's expiry if sooner. */
function expiryOf(principal: Principal, end: number): number {
  return principal.expiresAt == null ? end : Math.min(end, principal.expiresAt)
}

const ticketPattern = /^tk_[A-Za-z0-9_-]{43}$/

// 256 random bits: unguessable, so possession is the proof.
const newTicket = () => `tk_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')}`

export class MemoryTicketStore implements TicketStore {
  readonly ttlMs: number
  private readonly max: number
  private readonly now: () => number
  /** In issue order, which is also expiry order (one TTL for all). */
  private readonly live = new Map<string, { principal: Principal; expiresAt: number }>()

  constructor({ ttlMs = 30_000, max = 100_000, now = Date.now }: MemoryTicketOptions = {}) {
    this.ttlMs = ttlMs
    this.max = max
    this.now = now
  }

  get size(): number {
    return this.live.size
  }

  issue(principal: Principal): Ticket {
    const now = this.now()
    this.sweep(now)
    if (this.live.size >= this.max) this.live.delete(this.live.keys().next().value!)
    const ticket = newTicket()
    const expiresAt = expiryOf(principal, now + this.ttlMs)
    this.live.set(ticket, { principal, expiresAt })
    return { ticket, expiresAt }
  }

  redeem(ticket: string): Principal | null {
    if (!ticketPattern.test(ticket)) return null
    const entry = this.live.get(ticket)
    if (!entry) return null
    this.live.delete(ticket)
    return entry.expiresAt > this.now() ? entry.principal : null
  }

  private sweep(now: number): void {
    // In issue order, which is nearly expiry order: a ticket cut short by its credential may wait for the ones before it.
    for (const [ticket, entry] of this.live) {
      if (entry.expiresAt > now) break
      this.live.delete(ticket)
    }
  }
}

/** Tickets every instance can redeem: SET with an expiry, redeemed by GETDEL. */
export class RedisTicketStore implements TicketStore {
  constructor(private readonly redis: RedisClient, private readonly prefix = 'taskmesh:', readonly ttlMs = 30_000) {}

  async issue(principal: Principal): Promise<Ticket> {
    const ticket = newTicket()
    const now = Date.now()
    const expiresAt = expiryOf(principal, now + this.ttlMs)
    const { keyId, owner, scopes, expiresAt: credentialExpiresAt = null, kind } = principal
    const value = JSON.stringify({ keyId, owner, scopes: [...scopes], expiresAt: credentialExpiresAt, kind })
    await this.redis.send('SET', [`${this.prefix}ticket:${ticket}`, value, 'PX', String(Math.max(1, expiresAt - now))])
    return { ticket, expiresAt }
  }

  async redeem(ticket: string): Promise<Principal | null> {
    if (!ticketPattern.test(ticket)) return null
    const value = await this.redis.getdel(`${this.prefix}ticket:${ticket}`)
    if (!value) return null
    const { keyId, owner, scopes, expiresAt, kind } = JSON.parse(value) as { keyId: string; owner: string; scopes: string[]; expiresAt?: number | null; kind?: 'token' }
    return { keyId, owner, scopes: new Set(scopes), expiresAt, ...(kind ? { kind } : {}) }
  }
}
