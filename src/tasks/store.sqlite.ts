// TaskStore on the embedded SQLite database. Every query is a prepared
// statement; list queries are prepared once per shape (sort × filters present).
import { and, asc, desc, eq, gt, lt, sql, type SQL } from 'drizzle-orm'
import type { SqliteDb } from '../db/sqlite'
import { idempotencyKeys, tasks } from '../db/schema'
import type { CreateResult, IdempotentCreate, ListFilter, TaskFields, TaskRow, TaskStore, WriteResult } from './service'

const p = sql.placeholder

/** How long an Idempotency-Key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

const columns = {
  id: tasks.id,
  owner: tasks.owner,
  title: tasks.title,
  description: tasks.description,
  priority: tasks.priority,
  dueDate: tasks.dueDate,
  completed: tasks.completed,
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
  version: tasks.version,
}

const sortColumn = { created_at: tasks.createdAt, priority: tasks.priority, due_date: tasks.dueDate } as const

function shapeOf(filter: ListFilter): string {
  const cursor = filter.after === undefined ? '-' : filter.after.key === null ? 'null' : 'key'
  return [filter.sort, filter.completed !== undefined, filter.priority !== undefined, filter.dueBefore !== undefined,
    filter.dueAfter !== undefined, filter.q !== undefined, cursor].join('|')
}

/** Keyset condition: rows strictly after the cursor in the sort's order (due dates: nulls last either way). */
function afterCursor(filter: ListFilter): SQL | undefined {
  if (filter.after === undefined) return undefined
  const descending = filter.sort.startsWith('-')
  const column = sortColumn[filter.sort.replace('-', '') as keyof typeof sortColumn]
  const beyond = descending ? sql`(${column}, ${tasks.id}) < (${p('key')}, ${p('afterId')})` : sql`(${column}, ${tasks.id}) > (${p('key')}, ${p('afterId')})`
  if (!filter.sort.endsWith('due_date')) return beyond
  if (filter.after.key === null) return and(sql`${tasks.dueDate} IS NULL`, descending ? lt(tasks.id, p('afterId')) : gt(tasks.id, p('afterId')))
  return sql`(${tasks.dueDate} IS NULL OR ${beyond})`
}

export class SqliteTaskStore implements TaskStore {
  private readonly listStatements = new Map<string, { all(values: Record<string, unknown>): TaskRow[] }>()
  private readonly byId
  private readonly insertTask
  private readonly updateTask
  private readonly deleteTask
  private readonly findIdempotent
  private readonly insertIdempotent
  private readonly purgeIdempotent
  private insertsSincePurge = 0

  constructor(private readonly db: SqliteDb) {
    const owned = and(eq(tasks.id, p('id')), eq(tasks.owner, p('owner')))
    const versionMatches = sql`(${p('expected')} IS NULL OR ${tasks.version} = ${p('expected')})`
    this.byId = db.select(columns).from(tasks).where(owned).prepare()
    this.insertTask = db.insert(tasks).values({
      owner: p('owner'), title: p('title'), titleLower: p('titleLower'), description: p('description'),
      priority: p('priority'), dueDate: p('dueDate'), completed: p('completed'),
      createdAt: p('now'), updatedAt: p('now'), version: 1,
    }).returning(columns).prepare()
    this.updateTask = db.update(tasks).set({
      title: sql`${p('title')}`, titleLower: sql`${p('titleLower')}`, description: sql`${p('description')}`,
      priority: sql`${p('priority')}`, dueDate: sql`${p('dueDate')}`, completed: sql`${p('completed')}`,
      updatedAt: sql`${p('now')}`, version: sql`${tasks.version} + 1`,
    }).where(and(owned, versionMatches)).returning(columns).prepare()
    this.deleteTask = db.delete(tasks).where(and(owned, versionMatches)).returning({ id: tasks.id }).prepare()
    this.findIdempotent = db.select({ fingerprint: idempotencyKeys.fingerprint, response: idempotencyKeys.response })
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.owner, p('owner')), eq(idempotencyKeys.key, p('key')), gt(idempotencyKeys.createdAt, p('since'))))
      .prepare()
    // An expired key may be used again: its old row is overwritten.
    this.insertIdempotent = db.insert(idempotencyKeys).values({
      owner: p('owner'), key: p('key'), fingerprint: p('fingerprint'), response: p('response'), createdAt: p('now'),
    }).onConflictDoUpdate({
      target: [idempotencyKeys.owner, idempotencyKeys.key],
      set: { fingerprint: sql`excluded.fingerprint`, response: sql`excluded.response`, createdAt: sql`excluded.created_at` },
    }).prepare()
    this.purgeIdempotent = db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, p('since'))).prepare()
  }

  private fieldValues(fields: TaskFields) {
    return {
      title: fields.title,
      titleLower: fields.title.toLowerCase(),
      description: fields.description,
      priority: fields.priority,
      dueDate: fields.dueDate,
      completed: fields.completed ? 1 : 0,
    }
  }

  insert(owner: string, fields: TaskFields, now: number, idempotency?: IdempotentCreate): CreateResult {
    const values = { owner, now, ...this.fieldValues(fields) }
    if (!idempotency) return { row: this.insertTask.get(values) as TaskRow }
    const since = now - IDEMPOTENCY_TTL_MS
    if (++this.insertsSincePurge >= 1000) {
      this.insertsSincePurge = 0
      this.purgeIdempotent.run({ since })
    }
    // The lookup, the task and the key commit together, so a repeat can never make a second row.
    return this.db.transaction(() => {
      const previous = this.findIdempotent.get({ owner, key: idempotency.key, since })
      if (previous) return previous.fingerprint === idempotency.fingerprint ? { replay: previous.response } : { conflict: true as const }
      const row = this.insertTask.get(values) as TaskRow
      this.insertIdempotent.run({ owner, key: idempotency.key, fingerprint: idempotency.fingerprint, response: idempotency.render(row), now })
      return { row }
    }, { behavior: 'immediate' })
  }

  get(owner: string, id: number): TaskRow | undefined {
    return this.byId.get({ id, owner })
  }

  list(owner: string, filter: ListFilter): TaskRow[] {
    const key = shapeOf(filter)
    let statement = this.listStatements.get(key)
    if (!statement) {
      statement = this.prepareList(filter)
      this.listStatements.set(key, statement)
    }
    return statement.all({
      owner,
      limit: filter.limit,
      completed: filter.completed === undefined ? undefined : filter.completed ? 1 : 0,
      priority: filter.priority,
      dueBefore: filter.dueBefore,
      dueAfter: filter.dueAfter,
      q: filter.q,
      key: filter.after?.key,
      afterId: filter.after?.id,
    })
  }

  private prepareList(filter: ListFilter) {
    const conditions: Array<SQL | undefined> = [eq(tasks.owner, p('owner'))]
    if (filter.completed !== undefined) conditions.push(eq(tasks.completed, p('completed')))
    if (filter.priority !== undefined) conditions.push(eq(tasks.priority, p('priority')))
    if (filter.dueBefore !== undefined) conditions.push(lt(tasks.dueDate, p('dueBefore')))
    if (filter.dueAfter !== undefined) conditions.push(gt(tasks.dueDate, p('dueAfter')))
    // instr() has no wildcards, so % and _ in the search are literal.
    if (filter.q !== undefined) conditions.push(sql`instr(${tasks.titleLower}, ${p('q')}) > 0`)
    conditions.push(afterCursor(filter))
    const direction = filter.sort.startsWith('-') ? desc : asc
    const column = sortColumn[filter.sort.replace('-', '') as keyof typeof sortColumn]
    const order = filter.sort.endsWith('due_date')
      ? [sql`${tasks.dueDate} IS NULL`, direction(column), direction(tasks.id)]
      : [direction(column), direction(tasks.id)]
    return this.db.select(columns).from(tasks).where(and(...conditions)).orderBy(...order).limit(p('limit')).prepare() as unknown as {
      all(values: Record<string, unknown>): TaskRow[]
    }
  }

  update(owner: string, id: number, fields: TaskFields, expectedVersion: number | null, now: number): WriteResult {
    const row = this.updateTask.get({ id, owner, expected: expectedVersion, now, ...this.fieldValues(fields) })
    if (row) return row as TaskRow
    return this.byId.get({ id, owner }) ? 'stale' : 'missing'
  }

  delete(owner: string, id: number, expectedVersion: number | null): 'deleted' | 'missing' | 'stale' {
    if (this.deleteTask.get({ id, owner, expected: expectedVersion })) return 'deleted'
    return this.byId.get({ id, owner }) ? 'stale' : 'missing'
  }
}
