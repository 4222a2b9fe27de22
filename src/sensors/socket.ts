// The socket protocol of /v1/sensors/ws, one session per connection: ops, scopes,
// a per-connection message rate limit, and the sockets of each API key (at most
// MAX_SOCKETS_PER_KEY; closed once the key is revoked). Errors are answered in-band
// (`{ op: "error", code, message }`) and leave the socket open.
import type { RateLimit } from '../config'
import { hasScope, type Principal } from '../platform/keys'
import { MAX_JSON_DEPTH, valueNestsDeeper } from '../platform/body'
import { HttpError } from '../platform/errors'
import type { Limiter } from '../platform/ratelimit'
import { chain, type Awaitable } from './feed'
import type { SensorHub, Socket } from './hub'
import { topicPattern } from './model'
import type { RedisSocketSlots } from './socket-slots'
import type { SocketData } from './upgrade'

/** Sockets one API key may hold open at once. */
export const MAX_SOCKETS_PER_KEY = 100

export interface SocketLimits {
  /** Messages a connection may send per second, sustained (token bucket). */
  rate: number
  /** Messages it may send in a burst. */
  burst: number
  /** Topics one connection may be subscribed to at once. */
  maxSubscriptions: number
}

export const defaultSocketLimits: SocketLimits = { rate: 100, burst: 200, maxSubscriptions: 100 }

/** How long one round of key checks may wait for the store before the next round may start. */
const KEY_CHECK_GIVE_UP_MS = 10_000

/** The rate limit socket publishes draw from: the same bucket as the key's HTTP requests on sensor routes. */
export interface PublishLimit {
  limiter: Limiter
  limit: RateLimit
}

/** Whether a key still stands (asked of the key store), for sockets that outlive the upgrade that checked it. */
export type KeyCheck = (principal: Principal) => Awaitable<boolean>

export type ErrorCode =
  | 'bad_json' | 'unknown_op' | 'bad_topic' | 'bad_request' | 'bad_data'
  | 'forbidden' | 'rate_limited' | 'too_many_subscriptions' | 'unavailable'

interface Session {
  principal: Principal
  topics: Set<string>
  tokens: number
  refilledAt: number
  /** Messages refused in a row; past `burst` the client is ignoring the errors and is closed. */
  refused: number
  /** Closes the socket when its credential expires (a token's exp, a key's expires_at). */
  expiry: ReturnType<typeof setTimeout> | null
  /** Its place among its key's sockets on every instance (with Redis), else ''. */
  slot: string
}

// setTimeout's longest delay; a later expiry is waited for in steps.
const MAX_TIMER_MS = 2 ** 31 - 1

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value) && !(value instanceof Uint8Array)

/**
 * What an open socket keeps as its data (upgrade.ts): its principal and slot, and the handlers
 * Bun's events reach it through — one small object per socket instead of Elysia's request context.
 */
export class Connection implements SocketData {
  constructor(private readonly sockets: SensorSockets, readonly principal: Principal, readonly slot: string) {}

  open(ws: Socket): void {
    this.sockets.open(ws, this.principal, this.slot)
  }

  message(ws: Socket, message: string | Buffer): void {
    this.sockets.message(ws, parse(message))
  }

  close(ws: Socket): void {
    this.sockets.close(ws)
  }

  abandon(): void {
    this.sockets.abandon(this.principal, this.slot)
  }
}

/** A text frame holding a JSON object as its value; anything else as it came (which `message` answers with bad_json). */
function parse(message: string | Buffer): unknown {
  if (typeof message !== 'string' || message.charCodeAt(0) !== 0x7b) return message
  try {
    return JSON.parse(message)
  } catch {
    return message
  }
}

export class SensorSockets {
  private readonly sessions = new Map<Socket, Session>()
  /** Open sockets by key id, with a principal of that key (to check it again). */
  private readonly byKey = new Map<string, { principal: Principal; sockets: Set<Socket> }>()
  private keyCheck: { check: KeyCheck; everyMs: number } | null = null
  private checkTimer: ReturnType<typeof setInterval> | null = null
  private checking = false

  constructor(
    private readonly hub: SensorHub,
    readonly limits: SocketLimits = defaultSocketLimits,
    private readonly now: () => number = Date.now,
    private readonly publishLimit: PublishLimit | null = null,
    private readonly slots: RedisSocketSlots | null = null,
  ) {}

  /** Gives back the slot of an upgrade that did not happen. */
  abandon(principal: Principal, slot: string): void {
    if (slot) this.slots?.release(principal.keyId, slot)
  }

  /** The data of a socket about to open for `principal` with `slot` (as `reserve` gave it). */
  connection(principal: Principal, slot: string): Connection {
    return new Connection(this, principal, slot)
  }

  /** Whether `principal` may open one more socket here. */
  private admits(principal: Principal): boolean {
    return (this.byKey.get(principal.keyId)?.sockets.size ?? 0) < MAX_SOCKETS_PER_KEY
  }

  /**
   * Room for one more socket of `principal`'s key, before its upgrade: the slot to open it with,
   * or null when the key holds MAX_SOCKETS_PER_KEY open already (on all instances together with Redis).
   */
  reserve(principal: Principal): Awaitable<string | null> {
    if (!this.admits(principal)) return null
    return this.slots ? this.slots.reserve(principal.keyId, MAX_SOCKETS_PER_KEY) : ''
  }

  /**
   * Checks every open socket's key with `check` every `everyMs`, once per distinct key, and
   * closes the sockets of a key that no longer stands with 1008. The check asks the key store,
   * which every instance shares, so a key revoked anywhere closes its sockets everywhere.
   */
  checkKeys(check: KeyCheck, everyMs: number): void {
    this.keyCheck = { check, everyMs }
  }

  /** A socket opened with `slot`, as `reserve` gave it. */
  open(ws: Socket, principal: Principal, slot: string): void {
    // Upgrades reserved at once here may overshoot what `admits` saw (the shared slots cannot): the extra ones are closed.
    if (!slot && !this.admits(principal)) return ws.close(1008, `an API key may hold at most ${MAX_SOCKETS_PER_KEY} sockets open`)
    if (slot) this.slots?.opened(principal.keyId, slot)
    const session: Session = { principal, topics: new Set(), tokens: this.limits.burst, refilledAt: this.now(), refused: 0, expiry: null, slot }
    this.sessions.set(ws, session)
    if (principal.expiresAt != null) this.closeAtExpiry(ws, session, principal.expiresAt)
    let own = this.byKey.get(principal.keyId)
    if (!own) this.byKey.set(principal.keyId, (own = { principal, sockets: new Set() }))
    own.sockets.add(ws)
    if (this.keyCheck && !this.checkTimer) {
      this.checkTimer = setInterval(() => this.checkOpenKeys(), this.keyCheck.everyMs)
      this.checkTimer.unref()
    }
    this.hub.open(ws)
  }

  close(ws: Socket): void {
    const session = this.sessions.get(ws)
    this.sessions.delete(ws)
    if (session) {
      if (session.expiry) clearTimeout(session.expiry)
      if (session.slot) this.slots?.release(session.principal.keyId, session.slot)
      const own = this.byKey.get(session.principal.keyId)
      own?.sockets.delete(ws)
      if (own?.sockets.size === 0) this.byKey.delete(session.principal.keyId)
      if (this.byKey.size === 0 && this.checkTimer) {
        clearInterval(this.checkTimer)
        this.checkTimer = null
      }
    }
    this.hub.closed(ws, session?.topics ?? [])
  }

  /** A socket lives no longer than the credential it was opened with (one of a token is never checked against a store). */
  private closeAtExpiry(ws: Socket, session: Session, expiresAt: number): void {
    const left = expiresAt - this.now()
    if (left <= 0) return ws.close(1008, session.principal.kind === 'token' ? 'the access token expired' : 'the API key expired')
    session.expiry = setTimeout(() => this.closeAtExpiry(ws, session, expiresAt), Math.min(left, MAX_TIMER_MS))
    session.expiry.unref()
  }

  /** One client message, as Elysia parsed it (JSON text becomes a value; anything else stays a string or Buffer). */
  message(ws: Socket, message: unknown): void {
    const session = this.sessions.get(ws)
    if (!session || !this.admit(ws, session)) return
    if (!isObject(message)) return this.error(ws, 'bad_json', 'a message must be a JSON object in a text frame')
    switch (message.op) {
      case 'ping':
        this.hub.send(ws, '{"op":"pong"}')
        return
      case 'subscribe':
        return this.subscribe(ws, session, message)
      case 'unsubscribe': {
        const topic = this.topic(ws, message)
        if (topic === null) return
        this.hub.unsubscribe(ws, topic)
        session.topics.delete(topic)
        return
      }
      case 'publish':
        return this.publish(ws, session, message)
      default:
        return this.error(ws, 'unknown_op', `op must be one of subscribe, unsubscribe, publish, ping; got ${(JSON.stringify(message.op) ?? 'none').slice(0, 64)}`)
    }
  }

  private subscribe(ws: Socket, session: Session, message: Record<string, unknown>): void {
    if (!hasScope(session.principal, 'sensors:read')) return this.error(ws, 'forbidden', 'subscribing needs the scope sensors:read')
    const topic = this.topic(ws, message)
    if (topic === null) return
    const { since, epoch } = message
    if (since !== undefined && !(Number.isSafeInteger(since) && (since as number) >= 0)) {
      return this.error(ws, 'bad_request', 'since must be an integer ≥ 0')
    }
    if (epoch !== undefined && (typeof epoch !== 'string' || epoch.length > 128)) {
      return this.error(ws, 'bad_request', 'epoch must be a string (from a subscribed message)')
    }
    if (!session.topics.has(topic) && session.topics.size >= this.limits.maxSubscriptions) {
      return this.error(ws, 'too_many_subscriptions', `a connection may subscribe to at most ${this.limits.maxSubscriptions} topics`)
    }
    const subscribed = this.hub.subscribe(ws, topic, since as number | undefined, epoch as string | undefined)
    if (subscribed === true) session.topics.add(topic)
    if (!(subscribed instanceof Promise)) return
    // Cluster mode: the shared history answers asynchronously.
    session.topics.add(topic)
    subscribed.then(
      (ok) => void (ok || session.topics.delete(topic)),
      () => {
        session.topics.delete(topic)
        this.error(ws, 'unavailable', 'the shared sensor history is unavailable; subscribe again shortly')
      },
    )
  }

  private publish(ws: Socket, session: Session, message: Record<string, unknown>): void {
    if (!hasScope(session.principal, 'sensors:write')) return this.error(ws, 'forbidden', 'publishing needs the scope sensors:write')
    const topic = this.topic(ws, message)
    if (topic === null) return
    const data = message.data
    if (!isObject(data)) return this.error(ws, 'bad_data', 'data must be a JSON object')
    // The message is nested one level above its data: the whole message obeys the HTTP body rule.
    if (valueNestsDeeper(data, MAX_JSON_DEPTH - 1)) return this.error(ws, 'bad_data', `a message nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`)
    const refused = (error: unknown) => {
      if (error instanceof HttpError) return this.error(ws, 'bad_data', error.detail)
      this.error(ws, 'unavailable', 'the shared sensor feed is unavailable; publish again shortly')
    }
    try {
      const published = chain(this.takePublish(session.principal), (allowed) => {
        if (allowed) return this.hub.publish(topic, data)
        this.hub.rateLimited++
        const { rate, burst } = this.publishLimit!.limit
        this.error(ws, 'rate_limited', `this API key may publish ${rate} readings per second (burst ${burst}), over HTTP and sockets together; this one was ignored`)
      })
      if (published instanceof Promise) published.catch(refused)
    } catch (error) {
      refused(error)
    }
  }

  /** One token of the key's sensors bucket, under the name the gateway gives it for HTTP requests. */
  private takePublish(principal: Principal): Awaitable<boolean> {
    if (!this.publishLimit) return true
    const { limiter, limit } = this.publishLimit
    return chain(limiter.take(`sensors:key:${principal.keyId}`, limit), (verdict) => verdict.allowed)
  }

  /** One check per distinct key; a round still waiting for the store is not overlapped. */
  private checkOpenKeys(): void {
    if (this.checking || !this.keyCheck) return
    const waiting: Promise<void>[] = []
    for (const [keyId, { principal }] of this.byKey) {
      // A token's sockets (one owner's, each token with its own exp) close at their own expiry.
      if (principal.kind === 'token') continue
      const closeIfGone = (live: boolean) => void (live || this.closeKey(keyId))
      try {
        const live = this.keyCheck.check(principal)
        // A store that cannot answer now keeps the sockets open: the next round asks again.
        if (live instanceof Promise) waiting.push(live.then(closeIfGone, () => {}))
        else closeIfGone(live)
      } catch {
        // as above
      }
    }
    if (waiting.length === 0) return
    this.checking = true
    // A lookup that never settles must not stop every later round: a round gives up after a while.
    let giveUp: Timer | undefined
    const gaveUp = new Promise<void>((resolve) => (giveUp = setTimeout(resolve, KEY_CHECK_GIVE_UP_MS)))
    void Promise.race([Promise.all(waiting), gaveUp]).finally(() => {
      clearTimeout(giveUp)
      this.checking = false
    })
  }

  private closeKey(keyId: string): void {
    for (const ws of [...(this.byKey.get(keyId)?.sockets ?? [])]) ws.close(1008, 'the API key was revoked')
  }

  private topic(ws: Socket, message: Record<string, unknown>): string | null {
    const { topic } = message
    if (typeof topic === 'string' && topicPattern.test(topic)) return topic
    this.error(ws, 'bad_topic', 'topic must be sensors/{sensor_id} with a sensor_id of 1 to 64 of A-Z a-z 0-9 _ . -')
    return null
  }

  /** Token bucket: true when the message may be handled. */
  private admit(ws: Socket, session: Session): boolean {
    const { rate, burst } = this.limits
    if (rate === Infinity) return true
    const now = this.now()
    session.tokens = Math.min(burst, session.tokens + ((now - session.refilledAt) / 1000) * rate)
    session.refilledAt = now
    if (session.tokens >= 1) {
      session.tokens -= 1
      session.refused = 0
      return true
    }
    this.hub.rateLimited++
    if (++session.refused > burst) {
      ws.close(1008, 'message rate limit exceeded')
    } else {
      this.error(ws, 'rate_limited', `at most ${rate} messages per second (burst ${burst}); this one was ignored`)
    }
    return false
  }

  private error(ws: Socket, code: ErrorCode, message: string): void {
    this.hub.send(ws, JSON.stringify({ op: 'error', code, message }))
  }
}
