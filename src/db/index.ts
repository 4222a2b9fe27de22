// Opens the store named by DATABASE_URL. Features see only the interfaces.
import type { KeyStore } from '../platform/keys'
import { SqliteKeyStore } from '../platform/keys.sqlite'
import type { TaskStore } from '../tasks/service'
import { SqliteTaskStore } from '../tasks/store.sqlite'
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

export function openStore(url: string): Store {
  if (!url.startsWith('sqlite:')) {
    throw new Error(`DATABASE_URL ${url.split(':')[0]}: is not supported by this build yet; use sqlite:PATH`)
  }
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
