// The tasks feature's store on whichever database the service opened.
import type { Database } from '../db'
import type { TaskStore } from './service'
import { SqliteTaskStore } from './store.sqlite'

export function taskStore(database: Database): TaskStore {
  if (database.dialect === 'sqlite') return new SqliteTaskStore(database.db)
  // Loaded only for PostgreSQL (see db/index.ts), as its schema and queries are.
  const { PgTaskStore } = require('./store.pg') as typeof import('./store.pg')
  return new PgTaskStore(database.db)
}
