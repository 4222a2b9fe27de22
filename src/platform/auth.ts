// The `auth` macro: a route declares the scope it needs (`{ auth: 'tasks:read' }`)
// and receives the caller's `principal`. Credentials (API keys, and with OIDC_ISSUER the
// provider's access tokens) are checked before the body is read, so an anonymous caller
// costs no upload and learns nothing from validation errors.
import { Elysia } from 'elysia'
import { chain, type Awaitable } from './awaitable'
import type { OidcConfig } from '../config'
import { HttpError } from './errors'
import type { Logger } from './logger'
import { hasScope, isActive, verifyKey, type KeyStore, type Principal, type Requirement } from './keys'
import type { TokenVerifier } from './oidc'

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
/** How long a key verified good vouches for its client to the rate limit (it is still verified every KEY_CACHE_MS). */
export const VOUCHED_MS = 10 * 60_000

// The shape keys/index.ts issues keys in: `tm_<8 char id>_<secret>`.
const keyShape = /^tm_([A-Za-z0-9]{8})_[A-Za-z0-9]{32,128}$/

/** The id a raw key names, from its shape alone (nothing is looked up), or null when it is not shaped like a key. */
export function presentedKeyId(raw: string): string | null {
  return keyShape.exec(raw)?.[1] ?? null
}

export interface CredentialOptions {
  now?: () => number
  cacheMs?: number
  /** Verifies OIDC_ISSUER's access tokens; without one every bearer value is taken for an API key. */
  tokens?: TokenVerifier | null
}

// Three base64url parts (the signature may be empty: `alg: none` tokens reach the verifier and are refused there).
const jwtShape = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** Whether a bearer value is shaped like a JWT (a compact JWS), as opposed to an API key. */
export function isJwtShaped(raw: string): boolean {
  return jwtShape.test(raw)
}

/** The verifier of OIDC_ISSUER's tokens, or null when none is configured. */
export function tokenVerifier(oidc: OidcConfig | null, log?: Logger): TokenVerifier | null {
  if (!oidc) return null
  // Loaded only when configured: jose and the verifier are resident memory a service without OIDC_ISSUER never uses.
  const { TokenVerifier: Verifier } = require('./oidc') as typeof import('./oidc')
  return new Verifier(oidc, { log })
}

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
 * per request is most of the cost of a read. Keys the store refused are remembered as long, so a
 * client repeating a bad key costs no lookup either (and a key created meanwhile works once that
 * time has passed). With a synchronous store nothing here awaits.
 */
export class Credentials {
  private readonly cache = new Map<string, { principal: Principal; until: number }>()
  /** Refused raw keys and until when; oldest first, as Maps keep insertion order. */
  private readonly refused = new Map<string, number>()
  /** Raw keys verified good lately and until when, oldest first: only a whole key gets in. */
  private readonly vouchedFor = new Map<string, number>()
  private readonly now: () => number
  private readonly cacheMs: number
  readonly tokens: TokenVerifier | null

  constructor(readonly keys: KeyStore, { now = Date.now, cacheMs = KEY_CACHE_MS, tokens = null }: CredentialOptions = {}) {
    this.now = now
    this.cacheMs = cacheMs
    this.tokens = tokens
  }

  /** True when `authenticate` never returns a promise: a synchronous key store, and no tokens (verifying one may fetch keys). */
  get synchronous(): boolean {
    return this.keys.synchronous && this.tokens === null
  }

  /**
   * The access token a request presents, for the token verifier rather than the key store: a JWT
   * in `Authorization: Bearer` when OIDC is configured. `X-API-Key` carries keys only (and wins
   * over Authorization), so a JWT there is a malformed key.
   */
  tokenOf(request: Request): string | null {
    if (this.tokens === null || request.headers.get('x-api-key')) return null
    const raw = presentedKey(request.headers)
    return raw !== null && isJwtShaped(raw) ? raw : null
  }

  /** Whether the principal's key still exists unrevoked and unexpired, asked of the store: for what outlives a request (sockets, tickets). */
  isLive(principal: Principal): Awaitable<boolean> {
    // A token cannot be revoked here: it stands until it expires.
    if (principal.kind === 'token') return principal.expiresAt! > this.now()
    const record = this.keys.byId(principal.keyId)
    return record instanceof Promise ? record.then((found) => isActive(found, this.now())) : isActive(record, this.now())
  }

  /**
   * Whether `raw` was verified good within VOUCHED_MS: the rate limit then charges the key's own
   * bucket before verifying it, rather than its client's bucket of unknown keys (which anyone
   * at that address can empty with made-up keys). Verification itself is not skipped.
   */
  vouched(raw: string): boolean {
    return (this.vouchedFor.get(raw) ?? 0) > this.now()
  }

  private verify(raw: string): Awaitable<Principal | null> {
    const now = this.now()
    const hit = this.cache.get(raw)
    if (hit && hit.until > now) return hit.principal
    // What is not shaped like a key needs no lookup, and is not worth a place among the refused.
    if (presentedKeyId(raw) === null || (this.refused.get(raw) ?? 0) > now) return null
    const verified = verifyKey(this.keys, raw)
    return verified instanceof Promise ? verified.then((principal) => this.remember(raw, principal, now)) : this.remember(raw, verified, now)
  }

  private remember(raw: string, principal: Principal | null, now: number): Principal | null {
    if (principal) {
      if (this.cache.size >= KEY_CACHE_MAX) this.cache.clear()
      // Never trusted past its expiry: an expired key is refused at once, like a revoked one after cacheMs.
      this.cache.set(raw, { principal, until: Math.min(now + this.cacheMs, principal.expiresAt ?? Infinity) })
      this.refused.delete(raw)
      this.vouchedFor.delete(raw)
      if (this.vouchedFor.size >= KEY_CACHE_MAX) this.vouchedFor.delete(this.vouchedFor.keys().next().value!)
      this.vouchedFor.set(raw, now + VOUCHED_MS)
      return principal
    }
    this.cache.delete(raw)
    this.vouchedFor.delete(raw)
    // Bounded by dropping the oldest, so a flood of guesses costs memory no more than this.
    this.refused.delete(raw)
    if (this.refused.size >= KEY_CACHE_MAX) this.refused.delete(this.refused.keys().next().value!)
    this.refused.set(raw, now + this.cacheMs)
    return null
  }

  /** The verified principal of a request's key or token, or null when it has none or a bad key (a bad token rejects); resolved once per request. */
  principalOf(request: Request): Awaitable<Principal | null> {
    const slots = request as Request & Slots
    if (!(resolved in slots)) slots[resolved] = this.resolve(request)
    return slots[resolved]!
  }

  private resolve(request: Request): Awaitable<Principal | null> {
    const token = this.tokenOf(request)
    const raw = token ?? presentedKey(request.headers)
    // A token's own refusals (401 invalid_token with the reason, 503 while the provider is down) are thrown as they are.
    return token !== null ? this.tokens!.cached(token) ?? this.tokens!.verify(token) : raw ? this.verify(raw) : null
  }

  /** The request's principal when it may use `scope`; else a 401 or 403 problem. */
  authenticate(request: Request, scope: Requirement): Awaitable<Principal> {
    return chain(this.principalOf(request), (found) => {
      const principal = this.refuseUnless(request, found, scope)
      ;(request as Request & Slots)[admitted] = principal
      return principal
    })
  }

  /**
   * As `authenticate`, for a caller that keeps the principal itself (the lean lane): nothing is
   * kept on the request, so `principalFor` and `keyIdOf` know nothing of it.
   */
  check(request: Request, scope: Requirement): Awaitable<Principal> {
    const slots = request as Request & Slots
    // The rate gate may have resolved it already (it charges a known key's own bucket).
    const found = resolved in slots ? slots[resolved]! : this.resolve(request)
    return found instanceof Promise ? found.then((principal) => this.refuseUnless(request, principal, scope)) : this.refuseUnless(request, found, scope)
  }

  private refuseUnless(request: Request, principal: Principal | null, scope: Requirement): Principal {
    if (!principal) {
      if (!presentedKey(request.headers)) {
        throw new HttpError(401, `an API key is required (X-API-Key or Authorization: Bearer)${this.tokens ? ', or an access token of the identity provider' : ''}`, { headers: { 'www-authenticate': realm } })
      }
      throw new HttpError(401, 'the API key is invalid or revoked', { headers: { 'www-authenticate': `${realm}, error="invalid_token"` } })
    }
    if (!hasScope(principal, scope)) {
      throw new HttpError(403, `the ${principal.kind === 'token' ? 'access token' : 'API key'} lacks the scope ${scope}`, {
        headers: { 'www-authenticate': `${realm}, error="insufficient_scope", scope="${scope}"` },
      })
    }
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
  // Routes with a body are checked by the body parser before it reads a byte (it finds `authScope`
  // in the route table); transform, which runs before schema validation, checks the others, so
  // 401/403 win over 415 and 422. Elysia awaits a hook it takes for asynchronous, so with a
  // synchronous key store and no token verifier the hook is written without await.
  const check = (scope: Requirement) => credentials.synchronous
    ? { transform({ request }: { request: Request }) { credentials.authenticate(request, scope) } }
    : { async transform({ request }: { request: Request }) { await credentials.authenticate(request, scope) } }
  // The OpenAPI schemes (platform/docs.ts) a route's credentials may come by.
  const securityOf = (scope: Requirement): Array<Record<string, string[]>> => credentials.tokens
    ? [{ apiKey: [] }, { bearer: [] }, { accessToken: [] }, { oidc: scope === 'any' ? [] : [scope] }]
    : [{ apiKey: [] }, { bearer: [] }]
  return new Elysia({ name: 'platform/auth' }).macro({
    // `any`: any valid credential, whatever its scopes.
    auth: (scope: Requirement) => ({
      ...check(scope),
      resolve({ request }) {
        return { principal: credentials.principalFor(request) }
      },
      detail: { security: securityOf(scope) },
      authScope: scope,
    }),
  })
}
