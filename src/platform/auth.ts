// The `auth` macro: a route declares the scope it needs (`{ auth: 'tasks:read' }`)
// and receives the caller's `principal`. Keys are checked before the body schema,
// so an anonymous caller learns nothing from validation errors.
import { Elysia } from 'elysia'
import { HttpError } from './errors'
import { hasScope, verifyKey, type KeyStore, type Principal, type Scope } from './keys'

const realm = 'Bearer realm="taskmesh"'

/** The raw key from `X-API-Key` or `Authorization: Bearer`, if any. */
export function presentedKey(headers: Headers): string | null {
  const header = headers.get('x-api-key')
  if (header) return header.trim()
  const authorization = headers.get('authorization')
  if (authorization && /^bearer\s+/i.test(authorization)) return authorization.replace(/^bearer\s+/i, '').trim()
  return null
}

// One verification per request, shared by the rate limiter (which runs first) and the route.
const verified = new WeakMap<Request, Promise<Principal | null>>()

/** How long a verified key is trusted without asking the store again (so a revocation takes up to this long). */
export const KEY_CACHE_MS = 2000
const KEY_CACHE_MAX = 10_000

/**
 * Verified keys, per store: a client sends the same key on every request, and
 * hashing plus a database lookup per request is most of the cost of a read.
 */
const cacheOf = new WeakMap<KeyStore, Map<string, { principal: Principal | null; until: number }>>()

async function verifyCached(keys: KeyStore, raw: string): Promise<Principal | null> {
  let cache = cacheOf.get(keys)
  if (!cache) cacheOf.set(keys, (cache = new Map()))
  const now = Date.now()
  const hit = cache.get(raw)
  if (hit && hit.until > now) return hit.principal
  const principal = await verifyKey(keys, raw)
  if (cache.size >= KEY_CACHE_MAX) cache.clear()
  // Only keys that exist are remembered: random guesses must not fill the cache.
  if (principal) cache.set(raw, { principal, until: now + KEY_CACHE_MS })
  return principal
}

/** The verified principal of a request's key, or null when it has none or a bad one. */
export function principalOf(keys: KeyStore, request: Request): Promise<Principal | null> {
  let result = verified.get(request)
  if (!result) {
    const raw = presentedKey(request.headers)
    result = raw ? verifyCached(keys, raw) : Promise.resolve(null)
    verified.set(request, result)
  }
  return result
}

export async function authenticate(keys: KeyStore, request: Request, scope: Scope): Promise<Principal> {
  const principal = await principalOf(keys, request)
  if (!principal) {
    if (!presentedKey(request.headers)) {
      throw new HttpError(401, 'an API key is required (X-API-Key or Authorization: Bearer)', { headers: { 'www-authenticate': realm } })
    }
    throw new HttpError(401, 'the API key is invalid or revoked', { headers: { 'www-authenticate': `${realm}, error="invalid_token"` } })
  }
  if (!hasScope(principal, scope)) {
    throw new HttpError(403, `the API key lacks the scope ${scope}`, {
      headers: { 'www-authenticate': `${realm}, error="insufficient_scope", scope="${scope}"` },
    })
  }
  return principal
}

const authorized = new WeakMap<Request, Principal>()

/** The id of the key a request was authorized with, for the access log. */
export function keyIdOf(request: Request): string | undefined {
  return authorized.get(request)?.keyId
}

export function auth(keys: KeyStore) {
  return new Elysia({ name: 'platform/auth' }).macro({
    auth: (scope: Scope) => ({
      // transform runs after parsing but before schema validation: 401/403 win over 422.
      async transform({ request }) {
        authorized.set(request, await authenticate(keys, request, scope))
      },
      resolve({ request }) {
        return { principal: authorized.get(request)! }
      },
      detail: { security: [{ apiKey: [] }, { bearer: [] }] },
    }),
  })
}
