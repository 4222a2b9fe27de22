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
  close(): Promise<void>
}

export function openStore(url: string): Store {
  if (!url.startsWith('sqlite:')) {
    throw new Error(`DATABASE_URL ${url.split(':')[0]}: is not supported by this build yet; use sqlite:PATH`)
  }
  const db = openSqlite(sqlitePath(url))
  // Touches a real table, so a broken or unmigrated file is not ready.
  const ping = db.$client.prepare('SELECT 1 AS ok FROM tasks LIMIT 1')
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
    close: async () => {
      db.$client.close()
    },
  }
}
