// The tasks and idempotency_keys tables on PostgreSQL, column for column the SQLite ones
// (schema.ts beside it); drizzle-kit generates drizzle/pg/ from every src/**/schema.pg.ts.
import { sql } from 'drizzle-orm'
import { bigint, bigserial, boolean, index, integer, pgTable, primaryKey, text } from 'drizzle-orm/pg-core'

const millis = (name: string) => bigint(name, { mode: 'number' })

export const tasks = pgTable('tasks', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  owner: text('owner').notNull(),
  title: text('title').notNull(),
  titleLower: text('title_lower').notNull(),
  description: text('description'),
  priority: integer('priority').notNull().default(1),
  dueDate: text('due_date'),
  completed: boolean('completed').notNull().default(false),
  createdAt: millis('created_at').notNull(),
  updatedAt: millis('updated_at').notNull(),
  version: integer('version').notNull().default(1),
}, (table) => [
  index('tasks_owner_created').on(table.owner, table.createdAt, table.id),
  index('tasks_owner_due').on(table.owner, table.dueDate, table.id),
  index('tasks_owner_priority').on(table.owner, table.priority, table.id),
])

export const idempotencyKeys = pgTable('idempotency_keys', {
  owner: text('owner').notNull(),
  key: text('key').notNull(),
  fingerprint: text('fingerprint').notNull(),
  response: text('response').notNull(),
  createdAt: millis('created_at').notNull().default(sql`(extract(epoch from now()) * 1000)::bigint`),
}, (table) => [primaryKey({ columns: [table.owner, table.key] })])
