// The tasks and idempotency_keys tables on SQLite. drizzle-kit generates drizzle/sqlite/ from every src/**/schema.ts.
import { sql } from 'drizzle-orm'
import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core'

export const tasks = sqliteTable('tasks', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  owner: text('owner').notNull(),
  title: text('title').notNull(),
  /** Unicode lower-case of the title, searched by `q`. */
  titleLower: text('title_lower').notNull(),
  description: text('description'),
  /** 0 low, 1 normal, 2 high, 3 urgent: stored as a rank so it sorts. */
  priority: integer('priority').notNull().default(1),
  dueDate: text('due_date'),
  completed: integer('completed', { mode: 'boolean' }).notNull().default(false),
  /** Epoch milliseconds. */
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  version: integer('version').notNull().default(1),
}, (table) => [
  index('tasks_owner_created').on(table.owner, table.createdAt, table.id),
  index('tasks_owner_due').on(table.owner, table.dueDate, table.id),
  index('tasks_owner_priority').on(table.owner, table.priority, table.id),
])

export const idempotencyKeys = sqliteTable('idempotency_keys', {
  owner: text('owner').notNull(),
  key: text('key').notNull(),
  /** SHA-256 of the request body, to tell a repeat from a conflicting reuse. */
  fingerprint: text('fingerprint').notNull(),
  /** The response body sent the first time, replayed on repeats. */
  response: text('response').notNull(),
  createdAt: integer('created_at').notNull().default(sql`(unixepoch() * 1000)`),
}, (table) => [primaryKey({ columns: [table.owner, table.key] })])
