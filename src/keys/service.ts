// The rules of the keys API: a caller manages its own keys, never mints one wider than itself,
// and only `admin` reaches other owners' keys.
import { HttpError, invalid } from '../platform/errors'
import { createKey, hasScope, isOwner, isScope, OWNER_RULE, type KeyRecord, type KeyStore, type Principal, type Scope } from '../platform/keys'
import { MAX_TOKEN_KEY_LIFETIME_S, type KeyModel } from './model'

const instant = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

function view(record: KeyRecord): KeyModel.Key {
  return {
    id: record.id,
    owner: record.owner,
    scopes: record.scopes === '' ? [] : (record.scopes.split(' ') as Scope[]),
    label: record.label,
    created_at: instant(record.createdAt)!,
    expires_at: instant(record.expiresAt),
    revoked_at: instant(record.revokedAt),
  }
}

// PostgreSQL's text cannot hold U+0000 and UTF-8 cannot encode a lone surrogate: refused on both stores alike.
function checkText(field: string, value: string): void {
  if (value.includes('\u0000')) throw invalid(field, 'must not contain the character U+0000')
  if (!value.isWellFormed()) throw invalid(field, 'must be well-formed Unicode (no lone surrogate)')
}

function checkOwner(field: string, value: string): void {
  if (!isOwner(value)) throw invalid(field, `must be ${OWNER_RULE}`)
}

/**
 * A credential must hold a scope of this service to manage keys: a token with only `openid`
 * (a login, not a grant to this service) reaches none of them.
 */
function requireServiceScope(caller: Principal): void {
  if (![...caller.scopes].some(isScope)) throw new HttpError(403, 'this credential holds none of the service\'s scopes, which managing keys needs')
}

export class KeyService {
  constructor(private readonly store: KeyStore, private readonly now: () => number = Date.now) {}

  /**
   * A new key for the caller (or, for `admin`, for `input.owner`). Its scopes default to the
   * caller's own and may only be ones the caller has: `hasScope`, so an `admin` caller may give any.
   */
  async create(caller: Principal, input: KeyModel.Input): Promise<KeyModel.Created> {
    requireServiceScope(caller)
    const admin = hasScope(caller, 'admin')
    const owner = input.owner ?? caller.owner
    if (owner !== caller.owner) {
      checkOwner('body.owner', owner)
      if (!admin) throw new HttpError(403, 'only a credential with the scope admin may create keys for another owner')
    }
    // A token may carry scopes of other services (openid, profile): only this service's pass on.
    const scopes = [...new Set(input.scopes ?? [...caller.scopes].filter(isScope))]
    if (scopes.length === 0) throw new HttpError(403, 'this credential holds none of the scopes a key can have')
    const wider = scopes.filter((scope) => !hasScope(caller, scope))
    if (wider.length > 0) throw new HttpError(403, `a key cannot have scopes its creator lacks: ${wider.join(', ')}`)
    const label = input.label ?? null
    if (label !== null) checkText('body.label', label)
    const expiresAt = this.expiry(caller, input.expires_in)
    const { raw, record } = await createKey(this.store, owner, scopes, { label, expiresAt })
    const { revoked_at: _, ...shown } = view(record)
    return { ...shown, key: raw }
  }

  /**
   * When the new key expires. A key that expires cannot mint one that outlives it (by default the
   * new key expires with it), or a short-lived key handed to a script could make itself permanent.
   * An access token lives minutes, but minting keys for devices is what a provider's user does with
   * one: its keys live MAX_TOKEN_KEY_LIFETIME_S by default and at most, so none is permanent.
   */
  private expiry(caller: Principal, seconds: number | undefined): number | null {
    if (caller.kind === 'token') {
      const days = MAX_TOKEN_KEY_LIFETIME_S / 86_400
      if (seconds !== undefined && seconds > MAX_TOKEN_KEY_LIFETIME_S) {
        throw new HttpError(403, `a key created with an access token lives at most ${days} days (expires_in ${MAX_TOKEN_KEY_LIFETIME_S})`)
      }
      return this.now() + (seconds ?? MAX_TOKEN_KEY_LIFETIME_S) * 1000
    }
    const asked = seconds === undefined ? null : this.now() + seconds * 1000
    const limit = caller.expiresAt ?? null
    if (limit === null) return asked
    if (asked === null) return limit
    if (asked > limit) throw new HttpError(403, `a key cannot outlive the key that creates it, which expires at ${new Date(limit).toISOString()}`)
    return asked
  }

  /** The keys of the caller (or, for `admin`, of `owner`), newest first, revoked and expired ones included. */
  async list(caller: Principal, owner = caller.owner): Promise<KeyModel.List> {
    requireServiceScope(caller)
    if (owner !== caller.owner) {
      checkOwner('query.owner', owner)
      if (!hasScope(caller, 'admin')) throw new HttpError(403, 'only a credential with the scope admin may list another owner\'s keys')
    }
    return { items: (await this.store.byOwner(owner)).map(view) }
  }

  /**
   * Revokes a key of the caller no wider than the caller (`admin`: anyone's). Another owner's key
   * and a wider one are answered like an unknown one (nothing tells them apart), and so is a key
   * already revoked: there is no live key of that id to revoke. Else a `tasks:read` key handed to a
   * script could revoke its owner's admin key.
   */
  async revoke(caller: Principal, id: string): Promise<void> {
    requireServiceScope(caller)
    const record = await this.store.byId(id)
    const reachable = record !== undefined && (hasScope(caller, 'admin')
      || (record.owner === caller.owner && view(record).scopes.every((scope) => hasScope(caller, scope))))
    if (!reachable || !(await this.store.revoke(id, this.now()))) throw new HttpError(404, `no unrevoked key ${id} of yours`)
  }
}
