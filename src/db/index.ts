// Opens the store named by DATABASE_URL. Features see only the interfaces.
import type { KeyStore } from '../platform/keys'
import { PgKeyStore } from '../platform/keys.pg'
import { SqliteKeyStore } from '../platform/keys.sqlite'
import type { TaskStore } from '../tasks/service'
import { PgTaskStore } from '../tasks/store.pg'
import { SqliteTaskStore } from '../tasks/store.sqlite'
import { openPostgres } from './postgres'
import { openSqlite, sqlitePath } from './sqlite'

export interface Store {
  tasks: TaskStore
  keys: KeyStore
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>
  /** Numbers worth exporting as metrics (sizes, pages), read at scrape time. */
  stats(): Record<string, { help: string; value: number }>
  close(): Promise<void>
}

export async function openStore(url: string): Promise<Store> {
  return url.startsWith('sqlite:') ? sqliteStore(url) : postgresStore(url)
}

function sqliteStore(url: string): Store {
  const db = openSqlite(sqlitePath(url))
  // Touches a real table, so a broken or unmigrated file is not ready.
  const ping = db.$client.prepare('SELECT 1 AS ok FROM tasks LIMIT 1')
  const pages = db.$client.prepare('SELECT page_count * page_size AS bytes, freelist_count * page_size AS free FROM pragma_page_count(), pragma_page_size(), pragma_freelist_count()')
  const path = sqlitePath(url)
  return {
    tasks: new SqliteTaskStore(db),
    keys: new SqliteKeyStore(db),
    ping: async () => {
      try {
        ping.get()
        return true
      } catch {
        return false
      }
    },
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
      db.$client.close()
    },
  }
}

async function postgresStore(url: string): Promise<Store> {
  const db = await openPostgres(url)
  return {
    tasks: new PgTaskStore(db),
    keys: new PgKeyStore(db),
    ping: async () => {
      try {
        await db.$client`SELECT 1 FROM tasks LIMIT 1`
        return true
      } catch {
        return false
      }
    },
    stats: () => ({}),
    close: () => db.$client.close(),
  }
}
