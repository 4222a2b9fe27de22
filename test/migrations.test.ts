import { describe, expect, test } from 'bun:test'
import { cpSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import journal from '../drizzle/sqlite/meta/_journal.json'
import { sqliteMigrationFiles, sqliteMigrations } from '../src/db/migrations'
import { tempDir } from './helpers'

const root = join(import.meta.dir, '..')

describe('migrations', () => {
  test('every generated migration is embedded, and nothing else', () => {
    const onDisk = readdirSync(join(root, 'drizzle/sqlite')).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, '')).sort()
    expect(Object.keys(sqliteMigrationFiles).sort()).toEqual(onDisk)
    expect(journal.entries.map((e) => e.tag).sort()).toEqual(onDisk)
    expect(sqliteMigrations().length).toBe(onDisk.length)
  })

  test('the schema has no change that a migration does not carry', async () => {
    // drizzle-kit wants a relative output folder: work on a copy in a scratch directory.
    const dir = tempDir()
    const out = join(dir, 'sqlite')
    cpSync(join(root, 'drizzle/sqlite'), out, { recursive: true })
    writeFileSync(join(dir, 'drizzle.config.ts'), `export default { dialect: 'sqlite', schema: ${JSON.stringify(join(root, 'src/db/schema.ts'))}, out: './sqlite' }\n`)
    const proc = Bun.spawn([join(root, 'node_modules/.bin/drizzle-kit'), 'generate', '--config', 'drizzle.config.ts'], { cwd: dir, stdout: 'pipe', stderr: 'pipe' })
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(0)
    expect(readdirSync(out).filter((f) => f.endsWith('.sql')).length).toBe(journal.entries.length)
    expect(stdout + stderr).toContain('No schema changes')
  })
})
