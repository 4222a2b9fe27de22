// TaskStore on the embedded SQLite database. Every query is a prepared statement; list
// queries are prepared once per shape (sort × filters present). Reads run directly; writes
// go through the group commit, so those of one event-loop turn share one transaction.
import { and, eq, gt, lt, sql } from 'drizzle-orm'
import { rawSelect, type SqliteDb } from '../db/sqlite'
import { GroupCommit } from './group-commit'
import { idempotencyKeys, tasks } from './schema'
import { IDEMPOTENCY_PURGE_EVERY, IDEMPOTENCY_TTL_MS, listOrder, listParams, listWhere, patchParams, patchSet, rowColumns, shapeOf } from './query'
import type { CreateResult, IdempotentCreate, ListFilter, TaskChanges, TaskFields, TaskRow, TaskStore, WriteResult } from './service'

const p = sql.placeholder

/** A row of `columns`, in their order, as bun:sqlite returns it. */
const toRow = (r: unknown[]): TaskRow => ({
  id: r[0] as number, owner: r[1] as string, title: r[2] as string, description: r[3] as string | null,
  priority: r[4] as number, dueDate: r[5] as string | null, completed: r[6] === 1,
  createdAt: r[7] as number, updatedAt: r[8] as number, version: r[9] as number,
})

const columns = rowColumns(tasks)

export class SqliteTaskStore implements TaskStore {
  private readonly listStatements = new Map<string, (values: Record<string, unknown>) => TaskRow[]>()
  private readonly byId
  private readonly insertTask
  private readonly updateTask
  private readonly patchTask
  private readonly deleteTask
  private readonly findIdempotent
  private readonly insertIdempotent
  private readonly purgeIdempotent
  private readonly writes: GroupCommit
  private insertsSincePurge = 0

  constructor(private readonly db: SqliteDb) {
    this.writes = new GroupCommit(db.$client)
    const owned = and(eq(tasks.id, p('id')), eq(tasks.owner, p('owner')))
    const versionMatches = sql`(${p('expected')} IS NULL OR ${tasks.version} = ${p('expected')})`
    this.byId = rawSelect(db, db.select(columns).from(tasks).where(owned), toRow)
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
    this.patchTask = db.update(tasks).set(patchSet(tasks, (name) => sql`${p(name)}`))
      .where(and(owned, versionMatches)).returning(columns).prepare()
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

  insert(owner: string, fields: TaskFields, now: number, idempotency?: IdempotentCreate): Promise<CreateResult> {
    const values = { owner, now, ...this.fieldValues(fields) }
    if (!idempotency) return this.writes.run(() => ({ row: this.insertTask.get(values) as TaskRow }))
    const since = now - IDEMPOTENCY_TTL_MS
    // The lookup, the task and the key share one savepoint under the write lock, so a repeat
    // (in this batch, or from another process) can never make a second row.
    return this.writes.run((): CreateResult => {
      if (++this.insertsSincePurge >= IDEMPOTENCY_PURGE_EVERY) {
        this.insertsSincePurge = 0
        this.purgeIdempotent.run({ since })
      }
      const previous = this.findIdempotent.get({ owner, key: idempotency.key, since })
      if (previous) return previous.fingerprint === idempotency.fingerprint ? { replay: previous.response } : { conflict: true }
      const row = this.insertTask.get(values) as TaskRow
      this.insertIdempotent.run({ owner, key: idempotency.key, fingerprint: idempotency.fingerprint, response: idempotency.render(row), now })
      return { row }
    })
  }

  get(owner: string, id: number): TaskRow | undefined {
    return this.byId({ id, owner })[0]
  }

  list(owner: string, filter: ListFilter): TaskRow[] {
    const key = shapeOf(filter)
    let statement = this.listStatements.get(key)
    if (!statement) {
      statement = this.prepareList(filter)
      this.listStatements.set(key, statement)
    }
    return statement(listParams(owner, filter, (value) => (value ? 1 : 0)))
  }

  private prepareList(filter: ListFilter) {
    // instr() has no wildcards, so % and _ in the search are literal.
    const where = listWhere(tasks, filter, (column, needle) => sql`instr(${column}, ${needle}) > 0`)
    return rawSelect(this.db, this.db.select(columns).from(tasks).where(where).orderBy(...listOrder(tasks, filter)).limit(p('limit')), toRow)
  }

  update(owner: string, id: number, fields: TaskFields, expectedVersion: number | null, now: number): Promise<WriteResult> {
    return this.writes.run(() => this.written(owner, id,
      this.updateTask.get({ id, owner, expected: expectedVersion, now, ...this.fieldValues(fields) })))
  }

  patch(owner: string, id: number, changes: TaskChanges, expectedVersion: number | null, now: number): Promise<WriteResult> {
    return this.writes.run(() => this.written(owner, id,
      this.patchTask.get({ id, owner, expected: expectedVersion, now, ...patchParams(changes, (value) => (value ? 1 : 0)) })))
  }

  delete(owner: string, id: number, expectedVersion: number | null): Promise<'deleted' | 'missing' | 'stale'> {
    return this.writes.run(() => this.deleteTask.get({ id, owner, expected: expectedVersion }) ? 'deleted' : this.missingOrStale(owner, id))
  }

  /** The row a conditional write returned, or why there was none (read inside the same transaction). */
  private written(owner: string, id: number, row: unknown): WriteResult {
    return row ? (row as TaskRow) : this.missingOrStale(owner, id)
  }

  private missingOrStale(owner: string, id: number): 'missing' | 'stale' {
    return this.get(owner, id) ? 'stale' : 'missing'
  }
}
