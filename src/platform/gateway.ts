// What a gateway in front of the service would do, done in it: URL limits, security headers,
// CORS from an allowlist, and rate limits for the routes that declare a rate group, decided
// before any key is looked up.
import { cors } from '@elysiajs/cors'
import { Elysia } from 'elysia'
import type { Config, RateGroup, RateLimit } from '../config'
import { presentedKey, presentedKeyId, type Credentials } from './auth'
import { HttpError } from './errors'
import type { Telemetry } from './observability'
import { TrustedProxies } from './proxies'
import { rateLimitHeaders, type Limiter, type Verdict } from './ratelimit'
import type { RouteTable } from './routes'

const MAX_URL_LENGTH = 8 * 1024

interface GatewayOptions {
  config: Config
  credentials: Credentials
  limiter: Limiter
  telemetry: Telemetry
  routes: RouteTable
}

/** The path of a request URL without building a URL object. */
function pathOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const query = url.indexOf('?', start)
  return url.slice(start, query === -1 ? undefined : query)
}

export function gateway({ config, credentials, limiter, telemetry, routes }: GatewayOptions) {
  const limitFor = (group: RateGroup): RateLimit | null => (group in config.rateLimits ? config.rateLimits[group]! : config.rateLimit)
  // No CORS at all unless origins are configured: browsers then keep the same-origin policy.
  const corsPlugin = config.corsOrigins.length === 0 ? new Elysia({ name: 'platform/no-cors' }) : cors({
    origin: config.corsOrigins,
    allowedHeaders: ['content-type', 'x-api-key', 'authorization', 'idempotency-key', 'if-match', 'if-none-match', 'x-request-id'],
    exposeHeaders: ['etag', 'location', 'x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after', 'idempotent-replayed'],
    maxAge: 600,
  })
  const anyLimit = config.rateLimit !== null || Object.values(config.rateLimits).some((limit) => limit !== null)
  const plugin = new Elysia({ name: 'platform/gateway' })
    .use(corsPlugin)
    .onRequest(({ request, set }) => {
      set.headers['x-content-type-options'] = 'nosniff'
      set.headers['referrer-policy'] = 'no-referrer'
      if (request.url.length > MAX_URL_LENGTH) throw new HttpError(414, `the URL is longer than ${MAX_URL_LENGTH} characters`)
    })
  // Elysia awaits every request hook it takes for asynchronous: with RATE_LIMIT=off there is none.
  if (!anyLimit) return plugin
  const proxies = new TrustedProxies(config.trustedProxies)
  const refuse = (group: RateGroup, limit: RateLimit, verdict: Verdict, headers: Record<string, unknown>) => {
    Object.assign(headers, rateLimitHeaders(limit, verdict))
    telemetry.rateLimited.inc({ group })
    return new HttpError(429, `rate limit of ${limit.rate}/s (burst ${limit.burst}) exceeded; retry after ${verdict.retryAfterSeconds} s`)
  }
  return plugin.onRequest(async ({ request, server, set }) => {
    if (request.method === 'OPTIONS') return
    const group = routes.rateGroupOf(pathOf(request.url))
    if (group === undefined) return
    const limit = limitFor(group)
    if (!limit) return
    const client = proxies.clientOf(server?.requestIP(request)?.address ?? 'local', request.headers.get('x-forwarded-for'))
    const raw = presentedKey(request.headers)
    const keyId = raw === null ? null : presentedKeyId(raw)
    let bucket = `${group}:ip:${client}`
    if (keyId !== null) {
      // A key's own bucket is drawn only once the key is known to be good: else anyone who knows
      // a key's id could spend its owner's budget with made-up secrets. Keys that are not, or not
      // yet, draw from their client's bucket of unknown keys, checked before the lookup, so
      // made-up keys (each with a fresh id) reach the key store no faster than that limit.
      const unknown = `${group}:unknown-keys:${client}`
      let good = credentials.known(raw!)
      if (good === undefined) {
        const open = await limiter.peek(unknown, limit)
        if (!open.allowed) throw refuse(group, limit, open, set.headers)
        good = (await credentials.principalOf(request)) !== null
      }
      bucket = good ? `${group}:key:${keyId}` : unknown
    }
    const verdict = await limiter.take(bucket, limit)
    if (!verdict.allowed) throw refuse(group, limit, verdict, set.headers)
    Object.assign(set.headers, rateLimitHeaders(limit, verdict))
  })
}
