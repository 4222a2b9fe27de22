// What a gateway in front of the service would do, done in it: URL limits, security headers,
// CORS from an allowlist, and rate limits for the routes that declare a rate group.
import { cors } from '@elysiajs/cors'
import { Elysia } from 'elysia'
import type { Config, RateGroup, RateLimit } from '../config'
import type { Credentials } from './auth'
import { HttpError } from './errors'
import type { Telemetry } from './observability'
import { rateLimitHeaders, type Limiter } from './ratelimit'
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
  return plugin.onRequest(async ({ request, server, set }) => {
    if (request.method === 'OPTIONS') return
    const group = routes.rateGroupOf(pathOf(request.url))
    if (group === undefined) return
    const limit = limitFor(group)
    if (!limit) return
    const principal = await credentials.principalOf(request)
    const identity = principal ? `key:${principal.keyId}` : `ip:${server?.requestIP(request)?.address ?? 'local'}`
    const verdict = await limiter.take(`${group}:${identity}`, limit)
    Object.assign(set.headers, rateLimitHeaders(limit, verdict))
    if (!verdict.allowed) {
      telemetry.rateLimited.inc({ group })
      throw new HttpError(429, `rate limit of ${limit.rate}/s (burst ${limit.burst}) exceeded; retry after ${verdict.retryAfterSeconds} s`)
    }
  })
}
