import { describe, expect, test } from 'bun:test'
import { cpSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Database } from 'bun:sqlite'
import { SQL } from 'bun'
import { drizzle as sqliteDrizzle } from 'drizzle-orm/bun-sqlite'
import { drizzle as pgDrizzle } from 'drizzle-orm/bun-sql'
import { openDatabase } from '../src/db'
import { migrationFiles, migrations } from '../src/db/migrations'
import { hashKey, verifyKey } from '../src/platform/keys'
import { keyStore } from '../src/platform/keys/store'
import { needs, postgresBase, tempDir } from './helpers'
import { scratchDatabase } from '../scripts/scratch-database'

const root = join(import.meta.dir, '..')

describe('migrations', () => {
  test.each(['sqlite', 'pg'] as const)('every generated %s migration is embedded, and nothing else', async (dialect) => {
    const onDisk = readdirSync(join(root, 'drizzle', dialect)).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, '')).sort()
    const journal = (await import(`../drizzle/${dialect}/meta/_journal.json`)) as { entries: Array<{ tag: string }> }
    expect(Object.keys(migrationFiles[dialect]).sort()).toEqual(onDisk)
    expect(journal.entries.map((e) => e.tag).sort()).toEqual(onDisk)
    expect(migrations(dialect).length).toBe(onDisk.length)
  })

  test.each([
    ['sqlite', 'sqlite', 'src/**/schema.ts'],
    ['pg', 'postgresql', 'src/**/schema.pg.ts'],
  ] as const)('the %s schema has no change that a migration does not carry', async (folder, dialect, schema) => {
    // drizzle-kit wants a relative output folder: work on a copy in a scratch directory.
    const dir = tempDir()
    const out = join(dir, folder)
    cpSync(join(root, 'drizzle', folder), out, { recursive: true })
    const journal = (await import(`../drizzle/${folder}/meta/_journal.json`)) as { entries: unknown[] }
    writeFileSync(join(dir, 'drizzle.config.ts'), `export default { dialect: '${dialect}', schema: ${JSON.stringify(join(root, schema))}, out: './${folder}' }\n`)
    const proc = Bun.spawn([join(root, 'node_modules/.bin/drizzle-kit'), 'generate', '--config', 'drizzle.config.ts'], { cwd: dir, stdout: 'pipe', stderr: 'pipe' })
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(0)
    expect(readdirSync(out).filter((f) => f.endsWith('.sql')).length).toBe(journal.entries.length)
    expect(stdout + stderr).toContain('No schema changes')
  })
})

describe('dialects in step', () => {
  test('SQLite and PostgreSQL schemas have the same tables, columns, nullability and indexes', async () => {
    const { getTableConfig: sqliteConfig } = await import('drizzle-orm/sqlite-core')
    const { getTableConfig: pgConfig } = await import('drizzle-orm/pg-core')
    const sqlite = { ...(await import('../src/tasks/schema')), ...(await import('../src/platform/keys/schema')) }
    const pg = { ...(await import('../src/tasks/schema.pg')), ...(await import('../src/platform/keys/schema.pg')) }
    type Shape = { name: string; columns: string[]; indexes: string[]; primaryKeys: string[] }
    const shape = (config: { name: string; columns: Array<{ name: string; notNull: boolean; primary: boolean }>; indexes: Array<{ config: { name: string; columns: unknown[] } }>; primaryKeys: Array<{ columns: Array<{ name: string }> }> }): Shape => ({
      name: config.name,
      columns: config.columns.map((c) => `${c.name}${c.notNull ? ' not null' : ''}${c.primary ? ' primary' : ''}`).sort(),
      indexes: config.indexes.map((i) => `${i.config.name}(${(i.config.columns as Array<{ name: string }>).map((c) => c.name).join(',')})`).sort(),
      primaryKeys: config.primaryKeys.map((k) => k.columns.map((c) => c.name).join(',')),
    })
    for (const table of ['apiKeys', 'tasks', 'idempotencyKeys'] as const) {
      expect(shape(pgConfig(pg[table]) as never)).toEqual(shape(sqliteConfig(sqlite[table]) as never))
    }
  })
})

describe('an existing database migrates forward', () => {
  type Migrator = { dialect: { migrate(m: unknown, s: unknown, c: unknown): unknown }; session: unknown }
  const raw = `tm_OldKey12_${'o'.repeat(40)}`
  const hash = Buffer.from(hashKey(raw)).toString('hex')

  /** After the store was opened at the first migration only (the release before keys had label and expires_at). */
  async function keyOfTheOldRelease(url: string) {
    const database = await openDatabase(url)
    try {
      const keys = keyStore(database)
      expect(await keys.byId('OldKey12')).toMatchObject({ id: 'OldKey12', owner: 'olga', scopes: 'tasks:read', label: null, expiresAt: null, revokedAt: null })
      expect((await verifyKey(keys, raw))?.owner).toBe('olga')
    } finally {
      await database.close()
    }
  }

  test('a SQLite file made by 0000_init keeps its keys, which gain no label and no expiry', async () => {
    const path = join(tempDir(), 'app.sqlite')
    const client = new Database(path, { create: true })
    const old = sqliteDrizzle({ client }) as unknown as Migrator
    old.dialect.migrate(migrations('sqlite').slice(0, 1), old.session, {})
    client.run(`INSERT INTO api_keys (id, owner, hash, scopes, created_at) VALUES ('OldKey12', 'olga', x'${hash}', 'tasks:read', 1)`)
    expect(client.query('SELECT name FROM pragma_table_info(\'api_keys\')').all()).not.toContainEqual({ name: 'expires_at' })
    client.close()
    await keyOfTheOldRelease(`sqlite:${path}`)
  })

  test.skipIf(!needs('postgres'))('a PostgreSQL database made by 0000_init keeps its keys, which gain no label and no expiry', async () => {
    const scratch = await scratchDatabase('postgres', { dir: tempDir(), postgres: postgresBase, prefix: 'taskmesh_test' })
    try {
      const client = new SQL({ url: scratch.url, max: 1 })
      const old = pgDrizzle({ client }) as unknown as Migrator
      await old.dialect.migrate(migrations('pg').slice(0, 1), old.session, {})
      await client.unsafe(`INSERT INTO api_keys (id, owner, hash, scopes, created_at) VALUES ('OldKey12', 'olga', '\\x${hash}', 'tasks:read', 1)`)
      await client.close()
      await keyOfTheOldRelease(scratch.url)
    } finally {
      await scratch.drop()
    }
  })
})
