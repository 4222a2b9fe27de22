// The API-key store on whichever database the service opened.
import type { Database } from '../../db'
import type { KeyStore } from './index'
import { SqliteKeyStore } from './store.sqlite'

export function keyStore(database: Database): KeyStore {
  if (database.dialect === 'sqlite') return new SqliteKeyStore(database.db)
  // Loaded only for PostgreSQL (see db/index.ts), as its schema and queries are.
  const { PgKeyStore } = require('./store.pg') as typeof import('./store.pg')
  return new PgKeyStore(database.db)
}
