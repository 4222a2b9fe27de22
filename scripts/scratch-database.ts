// Throwaway databases for the tests and the bench: a SQLite file in the caller's folder, or a
// fresh PostgreSQL database created empty on a server and dropped afterwards.
import { SQL } from 'bun'
import { join } from 'node:path'

/** The PostgreSQL server (a URL without a database name) when TEST_POSTGRES_URL / BENCH_POSTGRES_URL are unset. */
export const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432'

export interface ScratchDatabase {
  /** The DATABASE_URL to give the service. */
  url: string
  /** Drops a PostgreSQL database, even with sessions still open (a SQLite file goes with its folder); safe to call twice. */
  drop(): Promise<void>
}

export interface ScratchOptions {
  /** Where the SQLite file goes (app.sqlite). */
  dir: string
  /** The PostgreSQL server, without a database name. */
  postgres: string
  /** Start of the PostgreSQL database's name; the process id and a random suffix follow. */
  prefix: string
}

export async function scratchDatabase(store: 'sqlite' | 'postgres', options: ScratchOptions): Promise<ScratchDatabase> {
  if (store === 'sqlite') return { url: `sqlite:${join(options.dir, 'app.sqlite')}`, drop: async () => {} }
  const name = `${options.prefix}_${process.pid}_${crypto.randomUUID().slice(0, 8)}`
  await onServer(options.postgres, `CREATE DATABASE "${name}"`)
  let dropped = false
  return {
    url: `${options.postgres}/${name}`,
    async drop() {
      if (dropped) return
      dropped = true
      await onServer(options.postgres, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    },
  }
}

/** One statement through the server's maintenance database (CREATE/DROP DATABASE cannot run in the target). */
async function onServer(server: string, statement: string): Promise<void> {
  const admin = new SQL(`${server}/postgres`)
  try {
    await admin.unsafe(statement)
  } finally {
    await admin.close()
  }
}
