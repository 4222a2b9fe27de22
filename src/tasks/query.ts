// The queries of /v1/tasks that do not depend on the SQL dialect, as drizzle SQL over either
// database's task columns: the list (filters, keyset cursor, order) and the merge patch.
import { and, asc, desc, eq, gt, lt, sql, type AnyColumn, type SQL } from 'drizzle-orm'
import type { ListFilter, TaskChanges } from './service'

const p = sql.placeholder

export interface TaskColumns {
  id: AnyColumn
  owner: AnyColumn
  titleLower: AnyColumn
  priority: AnyColumn
  dueDate: AnyColumn
  completed: AnyColumn
  createdAt: AnyColumn
}

/** The columns a TaskRow is read from, in the order raw statements return them. */
const rowKeys = ['id', 'owner', 'title', 'description', 'priority', 'dueDate', 'completed', 'createdAt', 'updatedAt', 'version'] as const
type RowKey = (typeof rowKeys)[number]

export function rowColumns<T extends Record<RowKey, AnyColumn>>(t: T): Pick<T, RowKey> {
  return Object.fromEntries(rowKeys.map((key) => [key, t[key]])) as Pick<T, RowKey>
}

/** One prepared statement serves every filter with the same shape. */
export function shapeOf(filter: ListFilter): string {
  const cursor = filter.after === undefined ? '-' : filter.after.key === null ? 'null' : 'key'
  return [filter.sort, filter.completed !== undefined, filter.priority !== undefined, filter.dueBefore !== undefined,
    filter.dueAfter !== undefined, filter.q !== undefined, cursor].join('|')
}

function sortColumn(t: TaskColumns, filter: ListFilter): AnyColumn {
  const name = filter.sort.replace('-', '')
  return name === 'created_at' ? t.createdAt : name === 'priority' ? t.priority : t.dueDate
}

/** Keyset condition: rows strictly after the cursor in the sort's order (due dates: nulls last either way). */
function afterCursor(t: TaskColumns, filter: ListFilter): SQL | undefined {
  if (filter.after === undefined) return undefined
  const descending = filter.sort.startsWith('-')
  const column = sortColumn(t, filter)
  const beyond = descending ? sql`(${column}, ${t.id}) < (${p('key')}, ${p('afterId')})` : sql`(${column}, ${t.id}) > (${p('key')}, ${p('afterId')})`
  if (!filter.sort.endsWith('due_date')) return beyond
  if (filter.after.key === null) return and(sql`${t.dueDate} IS NULL`, descending ? lt(t.id, p('afterId')) : gt(t.id, p('afterId')))
  return sql`(${t.dueDate} IS NULL OR ${beyond})`
}

/**
 * WHERE for a list query. `contains` is the dialect's substring test; it must
 * treat % and _ literally (instr() in SQLite, strpos() in PostgreSQL).
 */
export function listWhere(t: TaskColumns, filter: ListFilter, contains: (column: AnyColumn, needle: SQL) => SQL): SQL | undefined {
  const conditions: Array<SQL | undefined> = [eq(t.owner, p('owner'))]
  if (filter.completed !== undefined) conditions.push(eq(t.completed, p('completed')))
  if (filter.priority !== undefined) conditions.push(eq(t.priority, p('priority')))
  if (filter.dueBefore !== undefined) conditions.push(lt(t.dueDate, p('dueBefore')))
  if (filter.dueAfter !== undefined) conditions.push(gt(t.dueDate, p('dueAfter')))
  if (filter.q !== undefined) conditions.push(contains(t.titleLower, sql`${p('q')}`))
  conditions.push(afterCursor(t, filter))
  return and(...conditions)
}

export function listOrder(t: TaskColumns, filter: ListFilter): SQL[] {
  const direction = filter.sort.startsWith('-') ? desc : asc
  const column = sortColumn(t, filter)
  return filter.sort.endsWith('due_date')
    ? [sql`${t.dueDate} IS NULL`, direction(column), direction(t.id)]
    : [direction(column), direction(t.id)]
}

/** The placeholder values of a list query. */
export function listParams(owner: string, filter: ListFilter, bool: (value: boolean) => unknown): Record<string, unknown> {
  return {
    owner,
    limit: filter.limit,
    completed: filter.completed === undefined ? undefined : bool(filter.completed),
    priority: filter.priority,
    dueBefore: filter.dueBefore,
    dueAfter: filter.dueAfter,
    q: filter.q,
    key: filter.after?.key,
    afterId: filter.after?.id,
  }
}

type Param = 'text' | 'integer' | 'boolean'

/**
 * SET of the one-statement merge patch: each field kept (its parameter NULL, or its keep flag set
 * for the nullable ones) or replaced. `param` renders a placeholder, with a cast where the dialect needs one.
 */
export function patchSet<T extends Record<'title' | 'titleLower' | 'description' | 'priority' | 'dueDate' | 'completed' | 'version', AnyColumn>>(
  t: T, param: (name: string, type: Param) => SQL,
) {
  return {
    title: sql`coalesce(${param('title', 'text')}, ${t.title})`,
    titleLower: sql`coalesce(${param('titleLower', 'text')}, ${t.titleLower})`,
    description: sql`CASE WHEN ${param('keepDescription', 'boolean')} THEN ${t.description} ELSE ${param('description', 'text')} END`,
    priority: sql`coalesce(${param('priority', 'integer')}, ${t.priority})`,
    dueDate: sql`CASE WHEN ${param('keepDueDate', 'boolean')} THEN ${t.dueDate} ELSE ${param('dueDate', 'text')} END`,
    completed: sql`coalesce(${param('completed', 'boolean')}, ${t.completed})`,
    updatedAt: sql`${p('now')}`,
    version: sql`${t.version} + 1`,
  }
}

/** The placeholder values of `patchSet`. */
export function patchParams(changes: TaskChanges, bool: (value: boolean) => unknown): Record<string, unknown> {
  return {
    title: changes.title ?? null,
    titleLower: changes.title === undefined ? null : changes.title.toLowerCase(),
    keepDescription: bool(changes.description === undefined),
    description: changes.description ?? null,
    priority: changes.priority ?? null,
    keepDueDate: bool(changes.dueDate === undefined),
    dueDate: changes.dueDate ?? null,
    completed: changes.completed === undefined ? null : bool(changes.completed),
  }
}

/** How long an Idempotency-Key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000
/** Every this many idempotent creates, a store deletes the keys older than the TTL (both stores alike). */
export const IDEMPOTENCY_PURGE_EVERY = 1000
