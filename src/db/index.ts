// The database connection and nothing stored in it: open the one DATABASE_URL names (SQLite or
// PostgreSQL), migrated; ping it, read its size, close it. Each feature builds its own store
// from the drizzle handle (see tasks/store.ts, platform/keys/store.ts).
import { startCheckpointer, type Warnings } from './checkpointer'
import type { PgDb } from './postgres'
import { openSqlite, sqlitePath, type SqliteDb } from './sqlite'

export type { PgDb } from './postgres'
export type { SqliteDb } from './sqlite'

interface Connection {
  /** True when the database answers a query on its migrations table (so an unmigrated file is not ready). */
  ping(): Promise<boolean>
  /** Numbers worth exporting as metrics (sizes, pages), read at scrape time. */
  stats(): Record<string, { help: string; value: number }>
  close(): Promise<void>
}

export type Database = Connection & ({ dialect: 'sqlite'; db: SqliteDb } | { dialect: 'postgres'; db: PgDb })

export interface OpenOptions {
  /** SQLite: checkpoint the WAL from a worker thread rather than inside commits (checkpointer.ts); the service does. */
  checkpointer?: boolean
  log?: Warnings
}

export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  return url.startsWith('sqlite:') ? sqlite(url, options) : postgres(url)
}

async function answers(query: () => unknown): Promise<boolean> {
  try {
    await query()
    return true
  } catch {
    return false
  }
}

async function sqlite(url: string, { checkpointer, log }: OpenOptions): Promise<Database> {
  const path = sqlitePath(url)
  const db = openSqlite(path)
  const checkpoints = checkpointer && path !== ':memory:' ? await startCheckpointer(db.$client, path, log) : null
  const ping = db.$client.prepare('SELECT 1 FROM __drizzle_migrations LIMIT 1')
  const pages = db.$client.prepare('SELECT page_count * page_size AS bytes, freelist_count * page_size AS free FROM pragma_page_count(), pragma_page_size(), pragma_freelist_count()')
  return {
    dialect: 'sqlite',
    db,
    ping: () => answers(() => ping.get()),
    stats: () => {
      const { bytes, free } = pages.get() as { bytes: number; free: number }
      const wal = path === ':memory:' ? 0 : Bun.file(`${path}-wal`).size
      return {
        sqlite_database_bytes: { help: 'Size of the SQLite database file', value: bytes },
        sqlite_free_bytes: { help: 'Bytes on the SQLite free list', value: free },
        sqlite_wal_bytes: { help: 'Size of the SQLite write-ahead log', value: wal },
      }
    },
    close: async () => {
      await checkpoints?.stop()
      db.$client.close()
    },
  }
}

async function postgres(url: string): Promise<Database> {
  // Loaded only for PostgreSQL: drizzle's PostgreSQL side is resident memory an embedded service never uses.
  const { openPostgres } = await import('./postgres')
  const db = await openPostgres(url)
  return {
    dialect: 'postgres',
    db,
    ping: () => answers(() => db.$client`SELECT 1 FROM drizzle.__drizzle_migrations LIMIT 1`),
    stats: () => ({}),
    close: () => db.$client.close(),
  }
}
