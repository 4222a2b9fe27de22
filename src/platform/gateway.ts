// What a gateway in front of the service would do, done in it: URL limits, security headers,
// CORS from an allowlist, and rate limits for the routes that declare a rate group, decided
// before any key is looked up.
import { cors } from '@elysiajs/cors'
import type { Server } from 'bun'
import { Elysia } from 'elysia'
import type { Config, RateGroup, RateLimit } from '../config'
import { chain, type Awaitable } from './awaitable'
import { presentedKey, presentedKeyId, type Credentials } from './auth'
import type { Principal } from './keys'
import { HttpError } from './errors'
import type { Telemetry } from './observability'
import { TrustedProxies } from './proxies'
import { rateLimitHeaders, type Limiter, type Verdict } from './ratelimit'
import type { RouteTable } from './routes'

const MAX_URL_LENGTH = 8 * 1024
/** Key lookups one client may have waiting on the store at once (a synchronous store has one at most). */
export const MAX_LOOKUPS_IN_FLIGHT = 4

interface GatewayOptions {
  config: Config
  credentials: Credentials
  limiter: Limiter
  telemetry: Telemetry
  routes: RouteTable
}

/** The path of a request URL without building a URL object. */
export function pathOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const query = url.indexOf('?', start)
  return url.slice(start, query === -1 ? undefined : query)
}

/** The headers every response carries, set before anything else of a request is decided. */
export function securityHeaders(headers: Record<string, unknown>): void {
  headers['x-content-type-options'] = 'nosniff'
  headers['referrer-policy'] = 'no-referrer'
}

/** Requests whose URL is longer than this are a 414. */
export const urlTooLong = (request: Request) => request.url.length > MAX_URL_LENGTH

export function gateway({ config, credentials, limiter, telemetry, routes, gate = rateGate({ config, credentials, limiter, telemetry, routes }) }: GatewayOptions & { gate?: RateGate | null }) {
  // No CORS at all unless origins are configured: browsers then keep the same-origin policy.
  const corsPlugin = config.corsOrigins.length === 0 ? new Elysia({ name: 'platform/no-cors' }) : cors({
    origin: config.corsOrigins,
    allowedHeaders: ['content-type', 'x-api-key', 'authorization', 'idempotency-key', 'if-match', 'if-none-match', 'x-request-id'],
    exposeHeaders: ['etag', 'location', 'x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after', 'idempotent-replayed'],
    maxAge: 600,
  })
  const plugin = new Elysia({ name: 'platform/gateway' })
    .use(corsPlugin)
    .onRequest(({ request, set }) => {
      securityHeaders(set.headers)
      if (urlTooLong(request)) throw new HttpError(414, `the URL is longer than ${MAX_URL_LENGTH} characters`)
    })
  // Elysia awaits every request hook it takes for asynchronous: with RATE_LIMIT=off there is none.
  if (!gate) return plugin
  if (gate.synchronous) {
    return plugin.onRequest(({ request, server, set }) => {
      gate.decide(request, server, set.headers)
    })
  }
  return plugin.onRequest(async ({ request, server, set }) => {
    await gate.decide(request, server, set.headers)
  })
}

/** The rate limit of requests, decided before their credentials are looked up. */
export interface RateGate {
  /** True when `decide` never returns a promise (an in-memory limiter and a synchronous key store). */
  readonly synchronous: boolean
  /** Admits the request (adding its RateLimit headers to `headers`) or throws its 429. */
  decide(request: Request, server: Server<unknown> | null, headers: Record<string, unknown>): Awaitable<void>
}

/** The rate gate of the configured limits; null when every limit is off. */
export function rateGate({ config, credentials, limiter, telemetry, routes }: GatewayOptions): RateGate | null {
  const limitFor = (group: RateGroup): RateLimit | null => (group in config.rateLimits ? config.rateLimits[group]! : config.rateLimit)
  const anyLimit = config.rateLimit !== null || Object.values(config.rateLimits).some((limit) => limit !== null)
  if (!anyLimit) return null
  const proxies = new TrustedProxies(config.trustedProxies)
  const refuse = (group: RateGroup, limit: RateLimit, verdict: Verdict, headers: Record<string, unknown>) => {
    Object.assign(headers, rateLimitHeaders(limit, verdict))
    telemetry.rateLimited.inc({ group })
    return new HttpError(429, `rate limit of ${limit.rate}/s (burst ${limit.burst}) exceeded; retry after ${verdict.retryAfterSeconds} s`)
  }
  const clientOf = (request: Request, server: Server<unknown> | null) =>
    proxies.clientOf(server?.requestIP(request)?.address ?? 'local', request.headers.get('x-forwarded-for'))
  const admit = (group: RateGroup, limit: RateLimit, verdict: Verdict, headers: Record<string, unknown>) => {
    if (!verdict.allowed) throw refuse(group, limit, verdict, headers)
    Object.assign(headers, rateLimitHeaders(limit, verdict))
  }
  const inFlight = new Map<string, number>()
  /**
   * The key lookup (or token verification) of a request whose client's bucket of unknown keys is not
   * empty: at most MAX_LOOKUPS_IN_FLIGHT at once per client, since that bucket is only charged once a credential is found bad.
   */
  const lookup = (request: Request, client: string) => {
    const running = inFlight.get(client) ?? 0
    if (running >= MAX_LOOKUPS_IN_FLIGHT) {
      throw new HttpError(429, `at most ${MAX_LOOKUPS_IN_FLIGHT} credentials from one client are checked at once; retry shortly`, { headers: { 'retry-after': '1' } })
    }
    const principal = credentials.principalOf(request)
    if (!(principal instanceof Promise)) return principal
    inFlight.set(client, running + 1)
    return principal.finally(() => {
      const left = inFlight.get(client)! - 1
      if (left === 0) inFlight.delete(client)
      else inFlight.set(client, left)
    })
  }
  /**
   * One request's rate limit, decided before its key is looked up. A key's own bucket is drawn
   * only for a key known to be good: else anyone who knows a key's id could spend its owner's
   * budget with made-up secrets. A key not verified good lately is looked up only while its
   * client's bucket of unknown keys is not empty (and a few at a time), and a bad one empties it,
   * so made-up keys (each with a fresh id) reach the key store no faster than that limit. A key
   * verified good within VOUCHED_MS goes straight to its own bucket, so nobody at its address can
   * lock it out with made-up keys. An access token is the same: one verified before (and cached)
   * draws from its owner's bucket at once, any other is verified only while its client's bucket of
   * unknown keys is not empty, and a refused one (401, or 503 while the provider is down) empties it.
   * Synchronous when the limiter and the key store are.
   */
  const decide = (request: Request, server: Server<unknown> | null, headers: Record<string, unknown>): Awaitable<void> => {
    if (request.method === 'OPTIONS') return
    const group = routes.rateGroupOf(pathOf(request.url))
    if (group === undefined) return
    const limit = limitFor(group)
    if (!limit) return
    const raw = presentedKey(request.headers)
    const keyId = raw === null ? null : presentedKeyId(raw)
    const take = (bucket: string) => chain(limiter.take(`${group}:${bucket}`, limit), (verdict) => admit(group, limit, verdict, headers))
    const anonymous = () => take(`ip:${clientOf(request, server)}`)
    const unvouched = () => {
      const client = clientOf(request, server)
      const unknown = `unknown-keys:${client}`
      return chain(limiter.peek(`${group}:${unknown}`, limit), (open) => {
        if (!open.allowed) throw refuse(group, limit, open, headers)
        const found = lookup(request, client)
        // A bad token rejects with its refusal, thrown once its client's bucket of unknown keys has paid for it.
        const settled = found instanceof Promise
          ? found.catch((error: unknown) => chain(take(unknown), (): never => { throw error }))
          : found
        // A bad key is answered 401 by its route, having paid from the same bucket.
        return chain(settled, (principal) => (principal ? take(`key:${principal.keyId}`) : take(unknown)))
      })
    }
    if (keyId === null) {
      const token = credentials.tokenOf(request)
      if (token === null) return anonymous()
      const verified = credentials.tokens!.cached(token)
      return verified ? take(`key:${verified.keyId}`) : unvouched()
    }
    if (credentials.vouched(raw!)) return take(`key:${keyId}`)
    return unvouched()
  }
  return { synchronous: limiter.synchronous === true && credentials.synchronous, decide }
}
