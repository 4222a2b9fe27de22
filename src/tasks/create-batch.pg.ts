// Creates without an Idempotency-Key on PostgreSQL, batched by event-loop turn: the creates of
// one turn become one multi-row INSERT (one statement, one commit, one WAL flush). Only these:
// a batch of updates would hold row locks across unrelated requests and could deadlock another instance.
import { SQL } from 'bun'
import { sql } from 'drizzle-orm'
import type { PgDb } from '../db'
import { failed, TurnBatch, type Outcome } from './batch'
import { rowColumns } from './query'
import { tasks } from './schema.pg'
import type { TaskRow } from './service'

/** A type, not an interface, so it passes as drizzle's placeholder values. */
export type NewTask = {
  owner: string
  title: string
  titleLower: string
  description: string | null
  priority: number
  dueDate: string | null
  completed: boolean
  now: number
}

const MAX_BATCH = 256

const p = sql.placeholder

export class PgCreateBatch {
  private readonly batch = new TurnBatch<NewTask, TaskRow>((items) => this.insert(items), MAX_BATCH)
  private readonly one
  private readonly many

  constructor(db: PgDb) {
    const columns = rowColumns(tasks)
    this.one = db.insert(tasks).values({
      owner: p('owner'), title: p('title'), titleLower: p('titleLower'), description: p('description'),
      priority: p('priority'), dueDate: p('dueDate'), completed: p('completed'),
      createdAt: p('now'), updatedAt: p('now'), version: 1,
    }).returning(columns).prepare('task_insert')
    // The records travel as one JSON text: no per-row parameters, no array-literal escaping.
    this.many = db.insert(tasks).select(sql`SELECT nextval(pg_get_serial_sequence('tasks', 'id')), owner, title, title_lower,
        description, priority, due_date, completed, now, now, 1
      FROM json_to_recordset(${p('records')}::text::json) AS r(i integer, owner text, title text, title_lower text,
        description text, priority integer, due_date text, completed boolean, now bigint)
      ORDER BY i`).returning(columns).prepare('task_insert_many')
  }

  /** Inserts `task`; resolves with its row once the statement that holds it committed. */
  add(task: NewTask): Promise<TaskRow> {
    return this.batch.add(task)
  }

  private async insert(items: NewTask[]): Promise<Outcome<TaskRow>[]> {
    if (items.length === 1) return [await this.single(items[0]!)]
    const records = items.map((item, i) => ({
      i, owner: item.owner, title: item.title, title_lower: item.titleLower, description: item.description,
      priority: item.priority, due_date: item.dueDate, completed: item.completed, now: item.now,
    }))
    try {
      const rows = (await this.many.execute({ records: JSON.stringify(records) })) as TaskRow[]
      if (rows.length !== items.length) throw new Error(`a multi-row insert of ${items.length} returned ${rows.length} rows`)
      // Ids are drawn in the records' order, so sorted by id the rows line up with the items.
      return rows.toSorted((a, b) => a.id - b.id).map((row) => ({ ok: true, value: row }))
    } catch (error) {
      // The server refused the statement, so nothing of it committed: each alone, and only a bad one fails.
      if (refusedByServer(error)) return Promise.all(items.map((item) => this.single(item)))
      throw error
    }
  }

  private async single(item: NewTask): Promise<Outcome<TaskRow>> {
    try {
      return { ok: true, value: (await this.one.execute(item))[0] as TaskRow }
    } catch (error) {
      return failed(error)
    }
  }
}

/** An error PostgreSQL reported for the statement (it rolled back), unlike a lost connection, after which the commit is unknown. */
function refusedByServer(error: unknown): boolean {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error
  return cause instanceof SQL.PostgresError && !!cause.errno && !cause.errno.startsWith('08')
}
