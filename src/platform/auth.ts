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

type Awaitable<T> = T | Promise<T>

// The request's principal is kept on the Request object itself, under keys no one else uses (hooks
// take `{ request }` rather than the whole context, so Elysia still sees what each one reads).
const resolved = Symbol('principal')
const admitted = Symbol('admitted')
interface Slots {
  [resolved]?: Awaitable<Principal | null>
  [admitted]?: Principal
}

/**
 * Verifies the keys requests present, against one key store. Verified keys are trusted for
 * `cacheMs`: a client sends the same key on every request, and hashing plus a database lookup
 * per request is most of the cost of a read. With a synchronous store nothing here awaits.
 */
export class Credentials {
  private readonly cache = new Map<string, { principal: Principal; until: number }>()
  private readonly now: () => number
  private readonly cacheMs: number

  constructor(readonly keys: KeyStore, { now = Date.now, cacheMs = KEY_CACHE_MS }: CredentialOptions = {}) {
    this.now = now
    this.cacheMs = cacheMs
  }

  /** True when `authenticate` never returns a promise. */
  get synchronous(): boolean {
    return this.keys.synchronous
  }

  private verify(raw: string): Awaitable<Principal | null> {
    const now = this.now()
    const hit = this.cache.get(raw)
    if (hit && hit.until > now) return hit.principal
    const verified = verifyKey(this.keys, raw)
    return verified instanceof Promise ? verified.then((principal) => this.remember(raw, principal, now)) : this.remember(raw, verified, now)
  }

  private remember(raw: string, principal: Principal | null, now: number): Principal | null {
    if (this.cache.size >= KEY_CACHE_MAX) this.cache.clear()
    // Only keys that exist are remembered: random guesses must not fill the cache.
    if (principal) this.cache.set(raw, { principal, until: now + this.cacheMs })
    else this.cache.delete(raw)
    return principal
  }

  /** The verified principal of a request's key, or null when it has none or a bad one; resolved once per request. */
  principalOf(request: Request): Awaitable<Principal | null> {
    const slots = request as Request & Slots
    if (!(resolved in slots)) {
      const raw = presentedKey(request.headers)
      slots[resolved] = raw ? this.verify(raw) : null
    }
    return slots[resolved]!
  }

  /** The request's principal when it may use `scope`; else a 401 or 403 problem. */
  authenticate(request: Request, scope: Scope): Awaitable<Principal> {
    const principal = this.principalOf(request)
    return principal instanceof Promise ? principal.then((found) => this.admit(request, found, scope)) : this.admit(request, principal, scope)
  }

  private admit(request: Request, principal: Principal | null, scope: Scope): Principal {
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
    ;(request as Request & Slots)[admitted] = principal
    return principal
  }

  /** The principal `authenticate` admitted for this request (the auth macro resolves it after its check). */
  principalFor(request: Request): Principal {
    return (request as Request & Slots)[admitted]!
  }

  /** The id of the key a request was authorized with, for the access log. */
  keyIdOf(request: Request): string | undefined {
    return (request as Request & Slots)[admitted]?.keyId
  }
}

export function auth(credentials: Credentials) {
  // transform runs after parsing but before schema validation: 401/403 win over 422. Elysia awaits
  // a hook it takes for asynchronous, so with a synchronous key store the hook is written without await.
  const check = (scope: Scope) => credentials.synchronous
    ? { transform({ request }: { request: Request }) { credentials.authenticate(request, scope) } }
    : { async transform({ request }: { request: Request }) { await credentials.authenticate(request, scope) } }
  return new Elysia({ name: 'platform/auth' }).macro({
    auth: (scope: Scope) => ({
      ...check(scope),
      resolve({ request }) {
        return { principal: credentials.principalFor(request) }
      },
      detail: { security: [{ apiKey: [] }, { bearer: [] }] },
    }),
  })
}
