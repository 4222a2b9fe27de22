// The rules of the keys API: a caller manages its own keys, never mints one wider than itself,
// and only `admin` reaches other owners' keys.
import { HttpError, invalid } from '../platform/errors'
import { createKey, hasScope, isScope, type KeyRecord, type KeyStore, type Principal, type Scope } from '../platform/keys'
import type { KeyModel } from './model'

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

export class KeyService {
  constructor(private readonly store: KeyStore, private readonly now: () => number = Date.now) {}

  /**
   * A new key for the caller (or, for `admin`, for `input.owner`). Its scopes default to the
   * caller's own and may only be ones the caller has: `hasScope`, so an `admin` caller may give any.
   */
  async create(caller: Principal, input: KeyModel.Input): Promise<KeyModel.Created> {
    const admin = hasScope(caller, 'admin')
    const owner = input.owner ?? caller.owner
    if (owner !== caller.owner) {
      checkText('body.owner', owner)
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
   * An access token is exempt: minting lasting keys for devices is what a provider's user does with one.
   */
  private expiry(caller: Principal, seconds: number | undefined): number | null {
    const asked = seconds === undefined ? null : this.now() + seconds * 1000
    const limit = caller.kind === 'token' ? null : caller.expiresAt ?? null
    if (limit === null) return asked
    if (asked === null) return limit
    if (asked > limit) throw new HttpError(403, `a key cannot outlive the key that creates it, which expires at ${new Date(limit).toISOString()}`)
    return asked
  }

  /** The keys of the caller (or, for `admin`, of `owner`), newest first, revoked and expired ones included. */
  async list(caller: Principal, owner = caller.owner): Promise<KeyModel.List> {
    if (owner !== caller.owner && !hasScope(caller, 'admin')) throw new HttpError(403, 'only a credential with the scope admin may list another owner\'s keys')
    return { items: (await this.store.byOwner(owner)).map(view) }
  }

  /**
   * Revokes a key of the caller (`admin`: of anyone). Another owner's key is answered like an
   * unknown one, and so is a key already revoked: there is no live key of that id to revoke.
   */
  async revoke(caller: Principal, id: string): Promise<void> {
    const record = await this.store.byId(id)
    const reachable = record !== undefined && (record.owner === caller.owner || hasScope(caller, 'admin'))
    if (!reachable || !(await this.store.revoke(id, this.now()))) throw new HttpError(404, `no unrevoked key ${id} of yours`)
  }
}
