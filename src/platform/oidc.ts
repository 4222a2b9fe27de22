// OAuth 2.0 access tokens that are JWTs (RFC 9068), issued by the one OpenID Connect provider
// OIDC_ISSUER names, verified with jose: signing keys from the provider's discovery document,
// fetched again on an unknown `kid` (rotation), and verified tokens remembered until they expire.
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose'
import { isSecureUrl, type OidcConfig } from '../config'
import { HttpError } from './errors'
import { isOwner, isScope, OWNER_RULE, type Principal } from './keys'
import type { Logger } from './logger'

/** Asymmetric algorithms only: `none` and HMAC (which a public key could forge) are refused whatever a token's header says. */
export const TOKEN_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA']
/** Seconds of leeway on `exp` and `nbf`, for clocks that disagree. */
export const TOKEN_LEEWAY_S = 30
/** The provider's keys are fetched again on an unknown `kid` at most this often. */
export const KEYS_COOLDOWN_MS = 30_000
/**
 * After a failed fetch of discovery or keys, none is tried again for this long (and Retry-After
 * says so) while no keys were ever fetched; with keys cached, for KEYS_COOLDOWN_MS (or the
 * verifier's cooldown, if longer).
 */
export const PROVIDER_RETRY_MS = 2_000
/** How long a refused token is answered from memory (its refusal kept, nothing verified again). */
export const REFUSED_TOKEN_MS = 2_000
const FETCH_TIMEOUT_MS = 5_000
const CACHE_MAX = 5_000

// RFC 9068 access tokens say `at+jwt`; many providers still say `JWT` or nothing.
const acceptedTypes = new Set([undefined, 'jwt', 'at+jwt', 'application/at+jwt'])
const accessTokenTypes = new Set(['at+jwt', 'application/at+jwt'])
// Claims only an ID token carries (OpenID Connect Core §2, §3.1.3.6): an ID token is a login's proof for
// the client, not a grant to this service. `auth_time` is not among them: some providers put it in access tokens.
const idTokenClaims = ['nonce', 'at_hash'] as const

const realm = 'Bearer realm="taskmesh"'

function invalid(detail: string): HttpError {
  return new HttpError(401, `the access token is invalid: ${detail}`, { headers: { 'www-authenticate': `${realm}, error="invalid_token"` } })
}

function unavailable(detail: string, retryAt: number, now: number): HttpError {
  const seconds = Math.max(1, Math.ceil((retryAt - now) / 1000))
  return new HttpError(503, `${detail}; access tokens cannot be verified until it answers (API keys still work)`, { headers: { 'retry-after': String(seconds) } })
}

/** jose's own refusals of a token, in words a client can act on. */
function reasonOf(error: errors.JOSEError): string {
  if (error instanceof errors.JWTExpired) return 'it has expired'
  if (error instanceof errors.JWTClaimValidationFailed) return error.message
  if (error instanceof errors.JOSEAlgNotAllowed) return `its algorithm is not one of ${TOKEN_ALGORITHMS.join(', ')}`
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return 'no signing key of the provider matches its header'
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'its signature does not verify'
  return 'it is not a well-formed signed JWT'
}

/** True when verification failed because the provider could not be asked, not because of the token. */
function isUnreachable(error: unknown): boolean {
  if (!(error instanceof errors.JOSEError)) return true
  // A JWKS response that is not 200 or not JSON is the base class.
  return error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error.constructor === errors.JOSEError
}

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>
type LocalKeys = ReturnType<typeof createLocalJWKSet>

export interface TokenVerifierOptions {
  now?: () => number
  /** How often an unknown `kid` may fetch the keys again (KEYS_COOLDOWN_MS unless given). */
  cooldownMs?: number
  /** Told when the provider stops answering (once per outage) and when its keys are fetched again. */
  log?: Logger
}

/** The identity a token's owner has for rate limits, socket counts and the access log: never a key id (those have no colon). */
function identityOf(owner: string): string {
  return `jwt:${new Bun.CryptoHasher('sha256').update(owner).digest('base64url').slice(0, 16)}`
}

/**
 * Verifies the provider's access tokens. Discovery and the first key fetch start at once but
 * never hold up the service: until keys are fetched, token requests are answered 503.
 */
export class TokenVerifier {
  private keys: RemoteKeys | null = null
  private discovering: Promise<RemoteKeys> | null = null
  /** No fetch is tried before this instant after a failed one. */
  private retryAt = 0
  /** Why discovery last failed, repeated to every token until `retryAt` (a misconfiguration reads the same on each). */
  private discoveryFailure = 'the identity provider cannot be reached'
  /** The keys fetched before the last failed fetch, used alone (no fetch) until `retryAt`; null: none were. */
  private fetched: LocalKeys | null = null
  /** Verified tokens, oldest first, until their expiry (and its leeway). */
  private readonly cache = new Map<string, Principal>()
  /** Refused tokens by their SHA-256, oldest first: the refusal, until when it is answered from here. */
  private readonly refused = new Map<string, { error: HttpError; until: number }>()
  private readonly now: () => number
  private readonly cooldownMs: number
  private readonly log: Logger | undefined
  /** Set while the provider is known not to answer, so an outage is logged once. */
  private down = false

  constructor(readonly config: OidcConfig, { now = Date.now, cooldownMs = KEYS_COOLDOWN_MS, log }: TokenVerifierOptions = {}) {
    this.now = now
    this.cooldownMs = cooldownMs
    this.log = log
    void this.fetchKeys().catch(() => {})
  }

  /** Whether the provider answered, for the log: one line when it stops, one when it is back. */
  private answered(ok: boolean, why?: string): void {
    if (ok === !this.down) return
    this.down = !ok
    if (ok) this.log?.info({ issuer: this.config.issuer }, 'identity provider reachable: its signing keys are fetched')
    else this.log?.warn({ issuer: this.config.issuer, reason: why }, 'identity provider unreachable: access tokens are answered 503 until it answers (API keys still work)')
  }

  /**
   * The principal of a token verified before, until its expiry plus the leeway jose grants it
   * (so a token is not verified again on every request of its last 30 s); nothing is computed.
   */
  cached(raw: string): Principal | undefined {
    const hit = this.cache.get(raw)
    if (hit === undefined) return undefined
    if (hit.expiresAt! + TOKEN_LEEWAY_S * 1000 > this.now()) return hit
    this.cache.delete(raw)
    return undefined
  }

  /** The token's principal; throws a 401 problem for a bad token, a 503 one while the provider's keys cannot be had. */
  async verify(raw: string): Promise<Principal> {
    const digest = new Bun.CryptoHasher('sha256').update(raw).digest('base64url')
    const refusal = this.refused.get(digest)
    if (refusal && refusal.until > this.now()) throw refusal.error
    try {
      return await this.check(raw)
    } catch (error) {
      // Only a refusal of the token itself is kept: a 503 says nothing about the token.
      if (error instanceof HttpError && error.status === 401) {
        this.refused.delete(digest)
        if (this.refused.size >= CACHE_MAX) this.refused.delete(this.refused.keys().next().value!)
        this.refused.set(digest, { error, until: this.now() + REFUSED_TOKEN_MS })
      }
      throw error
    }
  }

  private async check(raw: string): Promise<Principal> {
    const keys = await this.ready()
    const { issuer, audience } = this.config
    let verified: { payload: JWTPayload; protectedHeader: { typ?: string } }
    // After a failed fetch, the keys fetched before it answer alone: a made-up kid fetches nothing until retryAt.
    const offline = this.now() < this.retryAt ? this.fetched : null
    try {
      verified = await jwtVerify(raw, offline ?? keys, {
        algorithms: TOKEN_ALGORITHMS, issuer, audience, clockTolerance: TOKEN_LEEWAY_S, requiredClaims: ['exp'],
        currentDate: new Date(this.now()),
      })
    } catch (error) {
      if (!isUnreachable(error)) throw invalid(reasonOf(error as errors.JOSEError))
      this.failed(keys, 'its signing keys could not be fetched')
      throw unavailable('the identity provider\'s signing keys could not be fetched', this.retryAt, this.now())
    }
    if (this.down && !offline) this.answered(true)
    const typ = verified.protectedHeader.typ?.toLowerCase()
    if (!acceptedTypes.has(typ)) throw invalid(`its type ${JSON.stringify(typ)} is not an access token's (at+jwt)`)
    // Typed `JWT` or not at all, an ID token would pass for an access token of the same audience.
    const idClaim = accessTokenTypes.has(typ!) ? undefined : idTokenClaims.find((claim) => claim in verified.payload)
    if (idClaim) throw invalid(`it carries ${idClaim}, so it is an ID token, not an access token`)
    const principal = this.principalOf(verified.payload)
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(raw, principal)
    return principal
  }

  /**
   * A fetch of the keys failed: none is tried again for a while. With keys fetched before, they
   * alone answer meanwhile (a token naming an unknown kid is then 401, its kid not among them);
   * without, every token is 503 until `retryAt`.
   */
  private failed(keys: RemoteKeys, why: string): void {
    this.answered(false, why)
    const cached = keys.jwks()
    this.fetched = cached === undefined ? null : createLocalJWKSet(cached)
    this.retryAt = this.now() + (cached === undefined ? PROVIDER_RETRY_MS : Math.max(this.cooldownMs, PROVIDER_RETRY_MS))
  }

  private principalOf(payload: JWTPayload): Principal {
    const { ownerClaim } = this.config
    const owner = payload[ownerClaim]
    if (!isOwner(owner)) throw invalid(`its ${ownerClaim} claim (the owner) is not a string of ${OWNER_RULE}`)
    const { scope, scp } = payload as { scope?: unknown; scp?: unknown }
    const named = typeof scope === 'string' ? scope.split(' ')
      : Array.isArray(scp) ? scp
      : typeof scp === 'string' ? scp.split(' ') : []
    const scopes = new Set(named.filter((name): name is string => typeof name === 'string' && isScope(name)))
    return { keyId: identityOf(owner), owner, scopes, expiresAt: payload.exp! * 1000, kind: 'token' }
  }

  /** The provider's key set once discovery has answered; a 503 problem while it has not. */
  private ready(): RemoteKeys | Promise<RemoteKeys> {
    if (this.keys) {
      if (this.keys.jwks() === undefined && this.now() < this.retryAt) {
        throw unavailable('the identity provider\'s signing keys could not be fetched', this.retryAt, this.now())
      }
      return this.keys
    }
    if (this.discovering) return this.discovering
    if (this.now() < this.retryAt) throw unavailable(this.discoveryFailure, this.retryAt, this.now())
    this.discovering = this.discover().then(
      (keys) => (this.keys = keys),
      (error: unknown) => {
        this.retryAt = this.now() + PROVIDER_RETRY_MS
        const detail = error instanceof Error ? error.message : 'the identity provider cannot be reached'
        this.discoveryFailure = detail
        this.answered(false, detail)
        throw unavailable(detail, this.retryAt, this.now())
      },
    ).finally(() => {
      this.discovering = null
    })
    return this.discovering
  }

  /** Discovery, then the keys: what the first token would otherwise wait for. */
  private async fetchKeys(): Promise<void> {
    const keys = await this.ready()
    await keys.reload().then(() => this.answered(true), () => this.failed(keys, 'its signing keys could not be fetched'))
  }

  private async discover(): Promise<RemoteKeys> {
    const { issuer } = this.config
    const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`
    let document: { issuer?: unknown; jwks_uri?: unknown }
    try {
      const response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
      if (response.status !== 200) throw new Error(`answered ${response.status}`)
      document = (await response.json()) as typeof document
    } catch {
      throw new Error(`the identity provider's discovery document ${url} could not be fetched`)
    }
    // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
    if (document.issuer !== issuer) throw new Error(`the identity provider's discovery document names the issuer ${JSON.stringify(document.issuer)}, not OIDC_ISSUER`)
    let jwksUri: URL
    try {
      jwksUri = new URL(String(document.jwks_uri))
    } catch {
      throw new Error('the identity provider\'s discovery document has no valid jwks_uri')
    }
    // Keys fetched over plain HTTP could be anyone's: https only, as for OIDC_ISSUER (config.ts).
    if (!isSecureUrl(jwksUri)) throw new Error(`the identity provider's jwks_uri ${jwksUri.href} is not https (http only to localhost, 127.0.0.0/8 or ::1)`)
    // Keys stay cached while the provider is down (no age limit); a token naming a new kid fetches them again.
    return createRemoteJWKSet(jwksUri, { cooldownDuration: this.cooldownMs, cacheMaxAge: Infinity, timeoutDuration: FETCH_TIMEOUT_MS })
  }
}
