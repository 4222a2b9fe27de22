// The socket protocol of /v1/sensors/ws, one session per connection: ops, scopes,
// and a per-connection message rate limit. Errors are answered in-band
// (`{ op: "error", code, message }`) and leave the socket open.
import { hasScope, type Principal } from '../platform/keys'
import { HttpError } from '../platform/errors'
import type { SensorHub, Socket } from './hub'
import { topicPattern } from './model'

export interface SocketLimits {
  /** Messages a connection may send per second, sustained (token bucket). */
  rate: number
  /** Messages it may send in a burst. */
  burst: number
  /** Topics one connection may be subscribed to at once. */
  maxSubscriptions: number
}

export const defaultSocketLimits: SocketLimits = { rate: 100, burst: 200, maxSubscriptions: 100 }

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
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value) && !(value instanceof Uint8Array)

export class SensorSockets {
  private readonly sessions = new Map<Socket, Session>()

  constructor(private readonly hub: SensorHub, readonly limits: SocketLimits = defaultSocketLimits, private readonly now: () => number = Date.now) {}

  open(ws: Socket, principal: Principal): void {
    this.sessions.set(ws, { principal, topics: new Set(), tokens: this.limits.burst, refilledAt: this.now(), refused: 0 })
    this.hub.open(ws)
  }

  close(ws: Socket): void {
    const session = this.sessions.get(ws)
    this.sessions.delete(ws)
    this.hub.closed(ws, session?.topics ?? [])
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
    if (!isObject(message.data)) return this.error(ws, 'bad_data', 'data must be a JSON object')
    const refused = (error: unknown) => {
      if (error instanceof HttpError) return this.error(ws, 'bad_data', error.detail)
      this.error(ws, 'unavailable', 'the shared sensor feed is unavailable; publish again shortly')
    }
    try {
      const published = this.hub.publish(topic, message.data)
      if (published instanceof Promise) published.catch(refused)
    } catch (error) {
      refused(error)
    }
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
