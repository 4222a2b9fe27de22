// The SQL migrations drizzle-kit generated, embedded in the bundle so the
// single-file executable migrates without a drizzle/ folder beside it.
import type { MigrationMeta } from 'drizzle-orm/migrator'
import journal from '../../drizzle/sqlite/meta/_journal.json'
import init from '../../drizzle/sqlite/0000_init.sql' with { type: 'text' }

/** Every generated migration by tag; a test checks this matches the journal. */
export const sqliteMigrationFiles: Record<string, string> = {
  '0000_init': init,
}

export function sqliteMigrations(): MigrationMeta[] {
  return journal.entries.map((entry) => {
    const query = sqliteMigrationFiles[entry.tag]
    if (query === undefined) throw new Error(`migration ${entry.tag} is not embedded in src/db/migrations.ts`)
    return {
      sql: query.split('--> statement-breakpoint'),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: new Bun.CryptoHasher('sha256').update(query).digest('hex'),
    }
  })
}
