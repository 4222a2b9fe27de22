// The tasks feature's store on whichever database the service opened.
import type { Database } from '../db'
import type { TaskStore } from './service'
import { PgTaskStore } from './store.pg'
import { SqliteTaskStore } from './store.sqlite'

export function taskStore(database: Database): TaskStore {
  return database.dialect === 'sqlite' ? new SqliteTaskStore(database.db) : new PgTaskStore(database.db)
}
