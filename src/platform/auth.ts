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

/** How long a verified key is trusted without asking the store again (so a revocation takes up to this long). */
export const KEY_CACHE_MS = 2000
const KEY_CACHE_MAX = 10_000

export interface CredentialOptions {
  now?: () => number
  cacheMs?: number
}

/**
 * Verifies the keys requests present, against one key store. Verified keys are trusted for
 * `cacheMs`: a client sends the same key on every request, and hashing plus a database lookup
 * per request is most of the cost of a read.
 */
export class Credentials {
  private readonly cache = new Map<string, { principal: Principal; until: number }>()
  // One verification per request, shared by the rate limiter (which runs first) and the route.
  private readonly verified = new WeakMap<Request, Promise<Principal | null>>()
  private readonly authorized = new WeakMap<Request, Principal>()
  private readonly now: () => number
  private readonly cacheMs: number

  constructor(readonly keys: KeyStore, { now = Date.now, cacheMs = KEY_CACHE_MS }: CredentialOptions = {}) {
    this.now = now
    this.cacheMs = cacheMs
  }

  private async verify(raw: string): Promise<Principal | null> {
    const now = this.now()
    const hit = this.cache.get(raw)
    if (hit && hit.until > now) return hit.principal
    const principal = await verifyKey(this.keys, raw)
    if (this.cache.size >= KEY_CACHE_MAX) this.cache.clear()
    // Only keys that exist are remembered: random guesses must not fill the cache.
    if (principal) this.cache.set(raw, { principal, until: now + this.cacheMs })
    else this.cache.delete(raw)
    return principal
  }

  /** The verified principal of a request's key, or null when it has none or a bad one. */
  principalOf(request: Request): Promise<Principal | null> {
    let result = this.verified.get(request)
    if (!result) {
      const raw = presentedKey(request.headers)
      result = raw ? this.verify(raw) : Promise.resolve(null)
      this.verified.set(request, result)
    }
    return result
  }

  /** The request's principal when it may use `scope`; else a 401 or 403 problem. */
  async authenticate(request: Request, scope: Scope): Promise<Principal> {
    const principal = await this.principalOf(request)
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
    this.authorized.set(request, principal)
    return principal
  }

  /** The principal `authenticate` admitted for this request (the auth macro resolves it after its check). */
  principalFor(request: Request): Principal {
    return this.authorized.get(request)!
  }

  /** The id of the key a request was authorized with, for the access log. */
  keyIdOf(request: Request): string | undefined {
    return this.authorized.get(request)?.keyId
  }
}

export function auth(credentials: Credentials) {
  return new Elysia({ name: 'platform/auth' }).macro({
    auth: (scope: Scope) => ({
      // transform runs after parsing but before schema validation: 401/403 win over 422.
      async transform({ request }) {
        await credentials.authenticate(request, scope)
      },
      resolve({ request }) {
        return { principal: credentials.principalFor(request) }
      },
      detail: { security: [{ apiKey: [] }, { bearer: [] }] },
    }),
  })
}
