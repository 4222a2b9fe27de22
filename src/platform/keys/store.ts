// The API-key store on whichever database the service opened.
import type { Database } from '../../db'
import type { KeyStore } from './index'
import { PgKeyStore } from './store.pg'
import { SqliteKeyStore } from './store.sqlite'

export function keyStore(database: Database): KeyStore {
  return database.dialect === 'sqlite' ? new SqliteKeyStore(database.db) : new PgKeyStore(database.db)
}
