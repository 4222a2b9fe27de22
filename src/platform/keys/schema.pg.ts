// The api_keys table on PostgreSQL, column for column the SQLite one (schema.ts beside it);
// drizzle-kit generates drizzle/pg/ from every src/**/schema.pg.ts and a test keeps the two in step.
import { bigint, customType, index, pgTable, text } from 'drizzle-orm/pg-core'

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' })
const millis = (name: string) => bigint(name, { mode: 'number' })

export const apiKeys = pgTable('api_keys', {
  id: text('id').primaryKey(),
  owner: text('owner').notNull(),
  hash: bytea('hash').notNull(),
  scopes: text('scopes').notNull(),
  label: text('label'),
  createdAt: millis('created_at').notNull(),
  expiresAt: millis('expires_at'),
  revokedAt: millis('revoked_at'),
}, (table) => [index('api_keys_owner').on(table.owner)])
