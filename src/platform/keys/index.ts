// API keys: `tm_<8 char id>_<40 char secret>`. Only the SHA-256 of a key is
// stored; the id finds the row and a constant-time compare checks the hash.
import { timingSafeEqual } from 'node:crypto'

export const SCOPES = ['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict', 'admin'] as const
export type Scope = (typeof SCOPES)[number]
export const DEFAULT_SCOPES: Scope[] = ['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict']

export interface KeyRecord {
  id: string
  owner: string
  hash: Uint8Array
  scopes: string
  createdAt: number
  revokedAt: number | null
}

/** What a request authenticated with a key may do. */
export interface Principal {
  keyId: string
  owner: string
  scopes: ReadonlySet<string>
}

export interface KeyStore {
  /** True when lookups answer at once (the embedded SQLite store): auth then runs without awaiting. */
  readonly synchronous: boolean
  insert(record: KeyRecord): void | Promise<void>
  byId(id: string): KeyRecord | undefined | Promise<KeyRecord | undefined>
  byOwner(owner: string): KeyRecord[] | Promise<KeyRecord[]>
  /** Marks the key revoked; false when no live key has that id. */
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

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has(scope) || principal.scopes.has('admin')
}

export async function createKey(store: KeyStore, owner: string, scopes: Scope[]): Promise<{ id: string; raw: string }> {
  const id = randomString(8)
  const raw = `tm_${id}_${randomString(40)}`
  await store.insert({ id, owner, hash: hashKey(raw), scopes: [...new Set(scopes)].join(' '), createdAt: Date.now(), revokedAt: null })
  return { id, raw }
}

/** The principal for a raw key, or null when it is malformed, unknown, revoked or wrong; synchronous when the store is. */
export function verifyKey(store: KeyStore, raw: string): Principal | null | Promise<Principal | null> {
  const match = keyPattern.exec(raw)
  if (!match) return null
  const record = store.byId(match[1]!)
  return record instanceof Promise ? record.then((found) => check(found, raw)) : check(record, raw)
}

function check(record: KeyRecord | undefined, raw: string): Principal | null {
  const hash = hashKey(raw)
  if (!record || record.hash.byteLength !== hash.byteLength) return null
  if (!timingSafeEqual(record.hash, hash) || record.revokedAt !== null) return null
  return { keyId: record.id, owner: record.owner, scopes: new Set(record.scopes.split(' ')) }
}

/** Accepts `tm_<id>`, `<id>` or a whole key. */
export function keyIdFrom(prefix: string): string | null {
  const match = /^(?:tm_)?([A-Za-z0-9]{8})(?:_[A-Za-z0-9]+)?$/.exec(prefix)
  return match ? match[1]! : null
}
