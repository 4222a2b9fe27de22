// What-if preload for `bun run bench --service-preload bench/experiments/key-cache.ts`.
// Finding: every request looks its API key up in SQLite through drizzle (SqliteKeyStore.byId)
// before anything else. This wraps byId with a small in-memory cache (5 s TTL) to measure what
// caching verified keys would save. (A real fix must also drop the entry on revoke.)
import { SqliteKeyStore } from '../../src/platform/keys.sqlite'

const original = SqliteKeyStore.prototype.byId
const cache = new Map<string, { at: number; value: ReturnType<typeof original> }>()
SqliteKeyStore.prototype.byId = function byId(this: SqliteKeyStore, id: string) {
  const hit = cache.get(id)
  const now = Date.now()
  if (hit && now - hit.at < 5000) return hit.value
  const value = original.call(this, id)
  cache.set(id, { at: now, value })
  return value
}
