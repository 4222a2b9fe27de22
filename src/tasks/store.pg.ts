// TaskStore on PostgreSQL. Races between instances are decided by the database: a conditional
// UPDATE for If-Match (the merge patch included), a primary-key claim for Idempotency-Key.
import { and, eq, lt, sql } from 'drizzle-orm'
import type { PgDb } from '../db'
import { PgCreateBatch } from './create-batch.pg'
import { idempotencyKeys, tasks } from './schema.pg'
import { IDEMPOTENCY_PURGE_EVERY, IDEMPOTENCY_TTL_MS, listOrder, listParams, listWhere, patchParams, patchSet, rowColumns, shapeOf } from './query'
import type { CreateResult, IdempotentCreate, ListFilter, TaskChanges, TaskFields, TaskRow, TaskStore, WriteResult } from './service'

const p = sql.placeholder

const columns = rowColumns(tasks)

const fieldValues = (fields: TaskFields) => ({
  title: fields.title,
  titleLower: fields.title.toLowerCase(),
  description: fields.description,
  priority: fields.priority,
  dueDate: fields.dueDate,
  completed: fields.completed,
})

export class PgTaskStore implements TaskStore {
  private readonly listStatements = new Map<string, { execute(values: Record<string, unknown>): Promise<TaskRow[]> }>()
  private readonly byId
  private readonly creates
  private readonly updateTask
  private readonly patchTask
  private readonly deleteTask
  private readonly purgeIdempotent
  private insertsSincePurge = 0

  constructor(private readonly db: PgDb) {
    const owned = and(eq(tasks.id, p('id')), eq(tasks.owner, p('owner')))
    const versionMatches = sql`(${p('expected')}::integer IS NULL OR ${tasks.version} = ${p('expected')}::integer)`
    this.byId = db.select(columns).from(tasks).where(owned).prepare('task_by_id')
    this.creates = new PgCreateBatch(db)
    this.updateTask = db.update(tasks).set({
      title: sql`${p('title')}`, titleLower: sql`${p('titleLower')}`, description: sql`${p('description')}`,
      priority: sql`${p('priority')}`, dueDate: sql`${p('dueDate')}`, completed: sql`${p('completed')}`,
      updatedAt: sql`${p('now')}`, version: sql`${tasks.version} + 1`,
    }).where(and(owned, versionMatches)).returning(columns).prepare('task_update')
    // Casts: a parameter inside coalesce()/CASE has no type PostgreSQL could infer from a column.
    this.patchTask = db.update(tasks).set(patchSet(tasks, (name, type) => sql`${p(name)}::${sql.raw(type)}`))
      .where(and(owned, versionMatches)).returning(columns).prepare('task_patch')
    this.deleteTask = db.delete(tasks).where(and(owned, versionMatches)).returning({ id: tasks.id }).prepare('task_delete')
    this.purgeIdempotent = db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, p('since'))).prepare('idempotency_purge')
  }

  async insert(owner: string, fields: TaskFields, now: number, idempotency?: IdempotentCreate): Promise<CreateResult> {
    const values = { owner, now, ...fieldValues(fields) }
    if (!idempotency) return { row: await this.creates.add(values) }
    const since = now - IDEMPOTENCY_TTL_MS
    // Outside the create's transaction, which then never holds the purge's row locks, and not
    // awaited: no create waits for it or fails with it (a failed purge is tried again at the next
    // create). A key claimed again meanwhile survives: the DELETE re-checks created_at on a row it had to wait for.
    if (++this.insertsSincePurge >= IDEMPOTENCY_PURGE_EVERY) {
      this.insertsSincePurge = 0
      this.purgeIdempotent.execute({ since }).catch(() => {
        this.insertsSincePurge = IDEMPOTENCY_PURGE_EVERY
      })
    }
    return this.db.transaction(async (tx) => {
      // Claiming the key first makes a concurrent repeat (on any instance) wait for our commit.
      const claimed = await tx.insert(idempotencyKeys)
        .values({ owner, key: idempotency.key, fingerprint: idempotency.fingerprint, response: '', createdAt: now })
        .onConflictDoUpdate({
          target: [idempotencyKeys.owner, idempotencyKeys.key],
          set: { fingerprint: sql`excluded.fingerprint`, response: '', createdAt: sql`excluded.created_at` },
          where: lt(idempotencyKeys.createdAt, since),
        })
        .returning({ key: idempotencyKeys.key })
      if (claimed.length === 0) {
        const [previous] = await tx.select({ fingerprint: idempotencyKeys.fingerprint, response: idempotencyKeys.response })
          .from(idempotencyKeys).where(and(eq(idempotencyKeys.owner, owner), eq(idempotencyKeys.key, idempotency.key)))
        return previous!.fingerprint === idempotency.fingerprint ? { replay: previous!.response } : { conflict: true as const }
      }
      const [row] = (await tx.insert(tasks).values({ ...values, createdAt: now, updatedAt: now }).returning(columns)) as TaskRow[]
      await tx.update(idempotencyKeys).set({ response: idempotency.render(row!) })
        .where(and(eq(idempotencyKeys.owner, owner), eq(idempotencyKeys.key, idempotency.key)))
      return { row: row! }
    })
  }

  async get(owner: string, id: number): Promise<TaskRow | undefined> {
    return (await this.byId.execute({ id, owner }))[0]
  }

  list(owner: string, filter: ListFilter): Promise<TaskRow[]> {
    const key = shapeOf(filter)
    let statement = this.listStatements.get(key)
    if (!statement) {
      // strpos() has no wildcards, so % and _ in the search are literal.
      const where = listWhere(tasks, filter, (column, needle) => sql`strpos(${column}, ${needle}) > 0`)
      statement = this.db.select(columns).from(tasks).where(where).orderBy(...listOrder(tasks, filter)).limit(p('limit'))
        .prepare(`task_list_${this.listStatements.size}`) as unknown as { execute(values: Record<string, unknown>): Promise<TaskRow[]> }
      this.listStatements.set(key, statement)
    }
    return statement.execute(listParams(owner, filter, (value) => value))
  }

  async update(owner: string, id: number, fields: TaskFields, expectedVersion: number | null, now: number): Promise<WriteResult> {
    const [row] = await this.updateTask.execute({ id, owner, expected: expectedVersion, now, ...fieldValues(fields) })
    if (row) return row as TaskRow
    return (await this.get(owner, id)) ? 'stale' : 'missing'
  }

  async patch(owner: string, id: number, changes: TaskChanges, expectedVersion: number | null, now: number): Promise<WriteResult> {
    const [row] = await this.patchTask.execute({ id, owner, expected: expectedVersion, now, ...patchParams(changes, (value) => value) })
    if (row) return row as TaskRow
    return (await this.get(owner, id)) ? 'stale' : 'missing'
  }

  async delete(owner: string, id: number, expectedVersion: number | null): Promise<'deleted' | 'missing' | 'stale'> {
    if ((await this.deleteTask.execute({ id, owner, expected: expectedVersion })).length > 0) return 'deleted'
    return (await this.get(owner, id)) ? 'stale' : 'missing'
  }
}
