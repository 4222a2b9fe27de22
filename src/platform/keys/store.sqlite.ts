// KeyStore on the embedded SQLite database.
import { and, desc, eq, isNull, sql } from 'drizzle-orm'
import { apiKeys } from './schema'
import type { SqliteDb } from '../../db'
import type { KeyInsert, KeyRecord, KeyStore } from './index'

const p = sql.placeholder

export class SqliteKeyStore implements KeyStore {
  readonly synchronous = true
  private readonly byIdStatement

  constructor(private readonly db: SqliteDb) {
    this.byIdStatement = db.select().from(apiKeys).where(eq(apiKeys.id, p('id'))).prepare()
  }

  insert(record: KeyInsert): void {
    this.db.insert(apiKeys).values({ ...record, hash: Buffer.from(record.hash) }).run()
  }

  byId(id: string): KeyRecord | undefined {
    return this.byIdStatement.get({ id })
  }

  byOwner(owner: string): KeyRecord[] {
    return this.db.select().from(apiKeys).where(eq(apiKeys.owner, owner)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).all()
  }

  revoke(id: string, at: number): boolean {
    const revoked = this.db.update(apiKeys).set({ revokedAt: at })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt))).returning({ id: apiKeys.id }).all()
    return revoked.length > 0
  }
}
