// API keys: `tm_<8 char id>_<40 char secret>`. Only the SHA-256 of a key is
// stored; the id finds the row and a constant-time compare checks the hash.
import { timingSafeEqual } from 'node:crypto'

export const SCOPES = ['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict', 'admin'] as const
export type Scope = (typeof SCOPES)[number]
export const DEFAULT_SCOPES: Scope[] = ['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict']
/** The longest lifetime a key may be given (`expires_in`, `--expires`): ten years, in seconds. */
export const MAX_KEY_LIFETIME_S = 10 * 365 * 24 * 3600
/** Longest label, in characters. */
export const MAX_LABEL = 200
/** Longest owner, in characters (UTF-16 code units, as JSON Schema's maxLength is checked here). */
export const MAX_OWNER = 255
/** The owner rule, in words, for every place that checks one: the keys API, the CLI, a token's owner claim. */
export const OWNER_RULE = `1 to ${MAX_OWNER} characters, without control characters or lone surrogates`
/** The characters an owner may not contain (C0 and C1 controls, U+0000 among them), as a JSON Schema pattern. */
export const OWNER_PATTERN = '^[^\\x00-\\x1f\\x7f-\\x9f]+$'
const ownerPattern = new RegExp(OWNER_PATTERN)

/** Whether `value` may be an owner: the one namespace keys and tokens share, so one rule everywhere. */
export function isOwner(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_OWNER && ownerPattern.test(value) && value.isWellFormed()
}

export interface KeyRecord {
  id: string
  owner: string
  hash: Uint8Array
  scopes: string
  /** What the owner called it (`POST /v1/keys` or `keys create --label`); null when unnamed. */
  label: string | null
  createdAt: number
  /** Epoch milliseconds from which the key is refused, like a revoked one; null: it never expires. */
  expiresAt: number | null
  revokedAt: number | null
}

/** What a request authenticated with a key may do. */
export interface Principal {
  keyId: string
  owner: string
  scopes: ReadonlySet<string>
  /** Epoch milliseconds from which the credential is refused (a key's expires_at); absent or null: never. */
  expiresAt?: number | null
  /** `token`: an access token of OIDC_ISSUER (platform/oidc.ts), whose keyId names its owner and which no store revokes; absent: an API key. */
  kind?: 'token'
}

/** What a route's `auth` requires: a scope, or `any` for any valid credential (as managing one's own keys). */
export type Requirement = Scope | 'any'

/** A row to insert: without label or expiry, it has none. */
export type KeyInsert = Omit<KeyRecord, 'label' | 'expiresAt'> & Partial<Pick<KeyRecord, 'label' | 'expiresAt'>>

export interface KeyStore {
  /** True when lookups answer at once (the embedded SQLite store): auth then runs without awaiting. */
  readonly synchronous: boolean
  insert(record: KeyInsert): void | Promise<void>
  byId(id: string): KeyRecord | undefined | Promise<KeyRecord | undefined>
  /** The owner's keys, newest first. */
  byOwner(owner: string): KeyRecord[] | Promise<KeyRecord[]>
  /** Marks the key revoked; false when no unrevoked key has that id. */
  revoke(id: string, at: number): boolean | Promise<boolean>
}

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const keyPattern = /^tm_([A-Za-z0-9]{8})_[A-Za-z0-9]{32,128}$/

function randomString(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of crypto.getRandomValues(new Uint8Array(length))) {
      // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
      if (byte < 248 && out.length < length) out += alphabet[byte % 62]
    }
  }
  return out
}

export function hashKey(raw: string): Uint8Array {
  return new Bun.CryptoHasher('sha256').update(raw).digest()
}

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value)
}

export function hasScope(principal: Principal, scope: Requirement): boolean {
  return scope === 'any' || principal.scopes.has(scope) || principal.scopes.has('admin')
}

/** Whether a stored key may be used at `now`: neither revoked nor expired. */
export function isActive(record: KeyRecord | undefined, now: number): record is KeyRecord {
  return record !== undefined && record.revokedAt === null && (record.expiresAt === null || record.expiresAt > now)
}

export interface NewKey {
  label?: string | null
  /** Epoch milliseconds; null or absent: never expires. */
  expiresAt?: number | null
}

// created_at rises strictly within a process, so "newest first" is exact for the keys one instance creates.
let lastCreatedAt = 0

export async function createKey(store: KeyStore, owner: string, scopes: Scope[], { label = null, expiresAt = null }: NewKey = {}): Promise<{ id: string; raw: string; record: KeyRecord }> {
  const id = randomString(8)
  const raw = `tm_${id}_${randomString(40)}`
  lastCreatedAt = Math.max(Date.now(), lastCreatedAt + 1)
  const record: KeyRecord = { id, owner, hash: hashKey(raw), scopes: [...new Set(scopes)].join(' '), label, createdAt: lastCreatedAt, expiresAt, revokedAt: null }
  await store.insert(record)
  return { id, raw, record }
}

/** The principal for a raw key, or null when it is malformed, unknown, revoked, expired or wrong; synchronous when the store is. */
export function verifyKey(store: KeyStore, raw: string, now = Date.now()): Principal | null | Promise<Principal | null> {
  const match = keyPattern.exec(raw)
  if (!match) return null
  const record = store.byId(match[1]!)
  return record instanceof Promise ? record.then((found) => check(found, raw, now)) : check(record, raw, now)
}

function check(record: KeyRecord | undefined, raw: string, now: number): Principal | null {
  const hash = hashKey(raw)
  if (!record || record.hash.byteLength !== hash.byteLength) return null
  if (!timingSafeEqual(record.hash, hash) || !isActive(record, now)) return null
  return { keyId: record.id, owner: record.owner, scopes: new Set(record.scopes.split(' ')), expiresAt: record.expiresAt }
}

/** Accepts `tm_<id>`, `<id>` or a whole key. */
export function keyIdFrom(prefix: string): string | null {
  const match = /^(?:tm_)?([A-Za-z0-9]{8})(?:_[A-Za-z0-9]+)?$/.exec(prefix)
  return match ? match[1]! : null
}
