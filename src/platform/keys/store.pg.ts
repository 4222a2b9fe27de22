// KeyStore on PostgreSQL.
import { and, desc, eq, isNull, sql } from 'drizzle-orm'
import type { PgDb } from '../../db'
import { apiKeys } from './schema.pg'
import type { KeyInsert, KeyRecord, KeyStore } from './index'

export class PgKeyStore implements KeyStore {
  readonly synchronous = false
  private readonly byIdStatement

  constructor(private readonly db: PgDb) {
    this.byIdStatement = db.select().from(apiKeys).where(eq(apiKeys.id, sql.placeholder('id'))).prepare('key_by_id')
  }

  async insert(record: KeyInsert): Promise<void> {
    await this.db.insert(apiKeys).values({ ...record, hash: Buffer.from(record.hash) })
  }

  async byId(id: string): Promise<KeyRecord | undefined> {
    return (await this.byIdStatement.execute({ id }))[0]
  }

  byOwner(owner: string): Promise<KeyRecord[]> {
    return this.db.select().from(apiKeys).where(eq(apiKeys.owner, owner)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const revoked = await this.db.update(apiKeys).set({ revokedAt: at })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt))).returning({ id: apiKeys.id })
    return revoked.length > 0
  }
}
