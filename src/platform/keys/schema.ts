// The api_keys table on SQLite. drizzle-kit generates drizzle/sqlite/ from every src/**/schema.ts.
import { blob, index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

export const apiKeys = sqliteTable('api_keys', {
  /** The 8-character public id embedded in the key (`tm_<id>_<secret>`). */
  id: text('id').primaryKey(),
  owner: text('owner').notNull(),
  /** SHA-256 of the whole raw key; the key itself is never stored. */
  hash: blob('hash', { mode: 'buffer' }).notNull(),
  /** Space-separated scopes. */
  scopes: text('scopes').notNull(),
  label: text('label'),
  createdAt: integer('created_at').notNull(),
  /** Epoch milliseconds from which the key is refused; null: never. */
  expiresAt: integer('expires_at'),
  revokedAt: integer('revoked_at'),
}, (table) => [index('api_keys_owner').on(table.owner)])
