// The SQL migrations drizzle-kit generated, embedded in the bundle so the
// single-file executable migrates without a drizzle/ folder beside it.
import type { MigrationMeta } from 'drizzle-orm/migrator'
import pgInit from '../../drizzle/pg/0000_init.sql' with { type: 'text' }
import pgKeyLabelExpiry from '../../drizzle/pg/0001_key_label_expiry.sql' with { type: 'text' }
import pgJournal from '../../drizzle/pg/meta/_journal.json'
import sqliteInit from '../../drizzle/sqlite/0000_init.sql' with { type: 'text' }
import sqliteKeyLabelExpiry from '../../drizzle/sqlite/0001_key_label_expiry.sql' with { type: 'text' }
import sqliteJournal from '../../drizzle/sqlite/meta/_journal.json'

interface Journal {
  entries: Array<{ tag: string; when: number; breakpoints: boolean }>
}

/** Every generated migration by dialect and tag; a test checks these match the journals. */
export const migrationFiles = {
  sqlite: { '0000_init': sqliteInit, '0001_key_label_expiry': sqliteKeyLabelExpiry } as Record<string, string>,
  pg: { '0000_init': pgInit, '0001_key_label_expiry': pgKeyLabelExpiry } as Record<string, string>,
}

const journals: Record<keyof typeof migrationFiles, Journal> = { sqlite: sqliteJournal, pg: pgJournal }

export function migrations(dialect: keyof typeof migrationFiles): MigrationMeta[] {
  return journals[dialect].entries.map((entry) => {
    const query = migrationFiles[dialect][entry.tag]
    if (query === undefined) throw new Error(`migration ${dialect}/${entry.tag} is not embedded in src/db/migrations.ts`)
    return {
      sql: query.split('--> statement-breakpoint'),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: new Bun.CryptoHasher('sha256').update(query).digest('hex'),
    }
  })
}
