// The PostgreSQL connection (Bun's built-in SQL client under drizzle), with
// migrations applied under an advisory lock so instances starting together do not race.
import { SQL } from 'bun'
import { drizzle, type BunSQLDatabase } from 'drizzle-orm/bun-sql'
import { migrations } from './migrations'

export type PgDb = BunSQLDatabase & { $client: SQL }

// Any constant both instances agree on: "taskmesh" in ASCII.
const MIGRATION_LOCK = 0x7461736b6d657368n

type Migrator = { dialect: { migrate(m: unknown, s: unknown, c: unknown): Promise<void> }; session: unknown }

export async function migratePostgres(url: string): Promise<void> {
  // One connection: the session-level lock and every migration statement share it.
  const client = new SQL({ url, max: 1 })
  try {
    await client`SELECT pg_advisory_lock(${MIGRATION_LOCK})`
    const db = drizzle({ client }) as unknown as Migrator
    await db.dialect.migrate(migrations('pg'), db.session, {})
    await client`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`
  } finally {
    await client.close()
  }
}

export async function openPostgres(url: string, { max = 10 } = {}): Promise<PgDb> {
  await migratePostgres(url)
  // Fail fast rather than queue forever when the database goes away.
  const client = new SQL({ url, max, connectionTimeout: 3, idleTimeout: 30 })
  return drizzle({ client }) as PgDb
}
