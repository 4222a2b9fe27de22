// The service's SQLite WAL is checkpointed by a worker thread (src/db/checkpointer.ts), not inside
// commits: the serving connection keeps only a far-off backstop, and the log is still copied back.
import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { openDatabase } from '../src/db'
import { BACKSTOP_PAGES } from '../src/db/checkpointer'
import { eventually } from './eventually'
import { tempDir } from './helpers'

const autocheckpoint = (client: Database) => (client.query('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint

describe('the WAL checkpointer', () => {
  test('commits no longer checkpoint, and the worker copies the log back into the database', async () => {
    const path = join(tempDir(), 'app.sqlite')
    const database = await openDatabase(`sqlite:${path}`, { checkpointer: true })
    if (database.dialect !== 'sqlite') throw new Error('expected SQLite')
    const client = database.db.$client
    expect(autocheckpoint(client)).toBe(BACKSTOP_PAGES)
    const before = statSync(path).size
    const insert = client.prepare(`INSERT INTO tasks (owner, title, title_lower, description, priority, completed, created_at, updated_at, version)
      VALUES ('wal', ?, ?, ?, 1, 0, 0, 0, 1)`)
    // About 2 000 pages: past SQLite's own 1 000-page autocheckpoint, short of the backstop.
    const text = 'x'.repeat(3500)
    for (let i = 0; i < 2000; i++) insert.run(`t${i}`, `t${i}`, text)
    await eventually(() => statSync(path).size > before + 2000 * 3500, { what: 'the worker has copied the log into the database file' })
    await database.close()
    const reopened = new Database(path)
    expect(reopened.query('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' })
    expect(reopened.query("SELECT count(*) AS n FROM tasks WHERE owner = 'wal'").get()).toEqual({ n: 2000 })
    reopened.close()
  })

  test('without it (tests, the keys CLI) SQLite checkpoints as it does by default', async () => {
    const database = await openDatabase(`sqlite:${join(tempDir(), 'app.sqlite')}`)
    if (database.dialect !== 'sqlite') throw new Error('expected SQLite')
    expect(autocheckpoint(database.db.$client)).toBe(1000)
    await database.close()
  })
})
