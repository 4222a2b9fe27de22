// The embedded SQLite connection: durable pragmas and migrations at open.
import { Database } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { drizzle, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite'
import { migrations } from './migrations'

export type SqliteDb = BunSQLiteDatabase & { $client: Database }

export function openSqlite(path: string): SqliteDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const client = new Database(path, { create: true, strict: true })
  // WAL lets readers run beside the writer; with synchronous=NORMAL a commit is
  // in the WAL before the call returns, so it survives a killed process.
  // First, so that switching to WAL while another process opens the file waits instead of failing.
  client.run('PRAGMA busy_timeout = 5000')
  client.run('PRAGMA journal_mode = WAL')
  client.run('PRAGMA synchronous = NORMAL')
  client.run('PRAGMA foreign_keys = ON')
  client.run('PRAGMA temp_store = MEMORY')
  const db = drizzle({ client })
  migrate(db)
  return db
}

function migrate(db: SqliteDb): void {
  // drizzle's own migrator, fed the embedded files instead of a folder.
  const dialect = (db as unknown as { dialect: { migrate: (m: unknown, s: unknown, c: unknown) => void } }).dialect
  const session = (db as unknown as { session: unknown }).session
  dialect.migrate(migrations('sqlite'), session, {})
}

/** `sqlite:PATH` → PATH */
export function sqlitePath(url: string): string {
  return url.slice('sqlite:'.length)
}

/**
 * A drizzle-built SELECT run as a raw bun:sqlite statement: drizzle still writes
 * the SQL, but rows come back as arrays and `row` builds each result directly,
 * skipping drizzle's generic per-column mapping (a tenth of a list request).
 */
export function rawSelect<T>(db: SqliteDb, query: { toSQL(): { sql: string; params: unknown[] } }, row: (values: unknown[]) => T) {
  const { sql, params } = query.toSQL()
  const names = params.map((param) => (param as { name?: string }).name)
  if (names.some((name) => name === undefined)) throw new Error('rawSelect takes placeholders only')
  const statement = db.$client.prepare(sql)
  type Value = string | number | null
  const rows = (found: unknown[][]) => found.map(row)
  // Up to three placeholders (a read by id, the common lists) are passed as arguments, not spread from an array built per call.
  const [a, b, c] = names as string[]
  switch (names.length) {
    case 1: return (values: Record<string, unknown>): T[] => rows(statement.values(values[a!] as Value ?? null))
    case 2: return (values: Record<string, unknown>): T[] => rows(statement.values(values[a!] as Value ?? null, values[b!] as Value ?? null))
    case 3: return (values: Record<string, unknown>): T[] => rows(statement.values(values[a!] as Value ?? null, values[b!] as Value ?? null, values[c!] as Value ?? null))
    default: return (values: Record<string, unknown>): T[] => rows(statement.values(...(names.map((name) => values[name!] ?? null) as Value[])))
  }
}
