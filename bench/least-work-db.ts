// The least-work reference's database: a scratch SQLite file opened with the service's own
// openSqlite (same pragmas, the embedded drizzle migrations, so the same tables and indexes),
// filled with the rows bench/least-work-data.ts read from the service, in one transaction.
import type { Database } from 'bun:sqlite'
import { openSqlite } from '../src/db/sqlite.ts'
import { PRIORITIES } from '../src/tasks/model.ts'
import type { ExportedTask } from './least-work-data.ts'

/** The connection, with `tasks` inserted under the ids the service gave them. */
export function openReferenceDb(path: string, tasks: readonly ExportedTask[]): Database {
  const client = openSqlite(path).$client
  const insert = client.prepare(`INSERT INTO tasks (id, owner, title, title_lower, description, priority, due_date, completed, created_at, updated_at, version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
  client.transaction(() => {
    for (const task of tasks) {
      const rank = PRIORITIES.indexOf(task.priority as (typeof PRIORITIES)[number])
      if (rank < 0) throw new Error(`task ${task.id} has the unknown priority ${task.priority}`)
      insert.run(task.id, task.owner, task.title, task.title.toLowerCase(), task.description, rank, task.due_date,
        task.completed ? 1 : 0, Date.parse(task.created_at), Date.parse(task.updated_at), task.version)
    }
  })()
  // AUTOINCREMENT continues after the highest id inserted, as the service's does; the WAL starts empty.
  client.run('PRAGMA wal_checkpoint(TRUNCATE)')
  return client
}
