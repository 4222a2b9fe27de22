// Writes batched by event-loop turn. SQLite (src/tasks/group-commit.ts): the writes of one turn share
// one transaction, counted by the commit frames in the write-ahead log. PostgreSQL
// (src/tasks/create-batch.pg.ts): the creates of one turn are one INSERT, seen in the rows' xmin.
import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { openSqlite } from '../src/db/sqlite'
import type { IdempotentCreate, TaskFields } from '../src/tasks/service'
import { taskStore } from '../src/tasks/store'
import { SqliteTaskStore } from '../src/tasks/store.sqlite'
import { tempDir, testApp, type TestApp } from './helpers'

type Task = { id: number; title: string; version: number }

/** Empties the WAL (from a second connection), so that `commitsSince` counts from here. */
function truncateWal(path: string): void {
  const side = new Database(path)
  side.run('PRAGMA wal_checkpoint(TRUNCATE)')
  side.close()
}

/** Transactions in the WAL of `path`: frames whose header names a database size mark a commit. */
function commits(path: string): number {
  const wal = readFileSync(`${path}-wal`)
  if (wal.length < 32) return 0
  const pageSize = wal.readUInt32BE(8)
  const salt = wal.subarray(16, 24)
  let count = 0
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (!wal.subarray(at + 8, at + 16).equals(salt)) break
    if (wal.readUInt32BE(at + 4) !== 0) count++
  }
  return count
}

const fields = (title: string): TaskFields => ({ title, description: null, priority: 1, dueDate: null, completed: false })

async function created(t: TestApp, key: string, title: string): Promise<Task> {
  const response = await t.request('/v1/tasks', { method: 'POST', key, json: { title } })
  expect(response.status).toBe(201)
  return (await response.json()) as Task
}

/** A store on its own file, for writes submitted straight to it; closed and removed at the end of the test. */
function freshStore() {
  const dir = tempDir()
  const path = join(dir, 'app.sqlite')
  const db = openSqlite(path)
  return {
    path, db, store: new SqliteTaskStore(db),
    [Symbol.dispose]() {
      db.$client.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

describe.skipIf(process.env.TEST_STORE === 'postgres')('group commit on SQLite', () => {
  test('creates sent together commit in one transaction', async () => {
    await using t = await testApp()
    const key = await t.key()
    const path = join(t.dir, 'app.sqlite')
    truncateWal(path)
    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      t.request('/v1/tasks', { method: 'POST', key, json: { title: `together ${i}` } })))
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(201))
    expect(commits(path)).toBe(1)
    const stored = await t.sql('SELECT count(*) AS n FROM tasks')
    expect(stored).toEqual([{ n: 40 }])
  })

  test('one failing write leaves the others of its batch committed', async () => {
    await using t = await testApp()
    const key = await t.key()
    const [a, b, c] = [await created(t, key, 'a'), await created(t, key, 'b'), await created(t, key, 'c')]
    const path = join(t.dir, 'app.sqlite')
    truncateWal(path)
    const write = (method: string, id: number, json?: unknown, ifMatch?: string) =>
      t.request(`/v1/tasks/${id}`, { method, key, json, headers: ifMatch ? { 'if-match': ifMatch } : {} })
    const responses = await Promise.all([
      t.request('/v1/tasks', { method: 'POST', key, json: { title: 'new' } }),
      write('PUT', a.id, { title: 'stale' }, `"${a.id}.7"`),
      write('PATCH', b.id, { title: 'b2' }, `"${b.id}.1"`),
      write('PATCH', b.id, { title: 'b3' }, `"${b.id}.1"`),
      write('DELETE', c.id + 1000),
      write('DELETE', c.id, undefined, `"${c.id}.1"`),
    ])
    expect(responses.map((r) => r.status)).toEqual([201, 412, 200, 412, 404, 204])
    expect(commits(path)).toBe(1)
    const read = async (id: number) => (await t.request(`/v1/tasks/${id}`, { key })).json()
    expect(await read(a.id)).toEqual(a)
    expect(await read(b.id)).toMatchObject({ title: 'b2', version: 2 })
    expect((await t.request(`/v1/tasks/${c.id}`, { key })).status).toBe(404)
  })

  test('repeats of an Idempotency-Key in one batch see the first and make one row', async () => {
    await using t = await testApp()
    const key = await t.key()
    const path = join(t.dir, 'app.sqlite')
    truncateWal(path)
    const send = (title: string) => t.request('/v1/tasks', { method: 'POST', key, json: { title }, headers: { 'idempotency-key': 'same' } })
    const responses = await Promise.all([send('once'), send('once'), send('other'), send('once')])
    expect(responses.map((r) => r.status)).toEqual([201, 201, 422, 201])
    expect(responses.map((r) => r.headers.get('idempotent-replayed'))).toEqual([null, 'true', null, 'true'])
    const ids = await Promise.all([responses[0]!, responses[1]!, responses[3]!].map(async (r) => ((await r.json()) as Task).id))
    expect(new Set(ids).size).toBe(1)
    expect(commits(path)).toBe(1)
    expect(await t.sql('SELECT count(*) AS n FROM tasks')).toEqual([{ n: 1 }])
  })

  test('a write that throws is rolled back alone, its statements with it', async () => {
    using fresh = freshStore()
    const { db, store } = fresh
    const throwing: IdempotentCreate = { key: 'k', fingerprint: 'f', render: () => { throw new Error('render failed') } }
    const results = await Promise.allSettled([
      store.insert('owner', fields('before'), 1),
      store.insert('owner', fields('thrown'), 1, throwing),
      store.insert('owner', fields('after'), 1),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error('render failed'))
    // The task row the throwing create inserted before it threw is gone, and so is its key.
    expect(db.$client.query('SELECT title FROM tasks ORDER BY id').all()).toEqual([{ title: 'before' }, { title: 'after' }])
    expect(db.$client.query('SELECT count(*) AS n FROM idempotency_keys').get()).toEqual({ n: 0 })
  })

  test('a lone write commits in the turn it was sent, not after a timer', async () => {
    using fresh = freshStore()
    const { db, store } = fresh
    let committed = false
    void Promise.resolve(store.insert('owner', fields('alone'), 1)).then(() => (committed = true))
    // The flush was scheduled first, so it has run (and settled the write) when this one fires.
    await new Promise((resolve) => setImmediate(resolve))
    expect(committed).toBe(true)
  })

  test('a large burst is split into transactions of bounded size, each write answered', async () => {
    using fresh = freshStore()
    const { path, db, store } = fresh
    truncateWal(path)
    const rows = await Promise.all(Array.from({ length: 300 }, (_, i) => store.insert('owner', fields(`burst ${i}`), 1)))
    expect(rows.every((result) => 'row' in result)).toBe(true)
    expect(commits(path)).toBe(2)
  })

  test('a write still pending when the database closes fails and is not stored', async () => {
    using fresh = freshStore()
    const { path, db, store } = fresh
    const pending = store.insert('owner', fields('too late'), 1)
    db.$client.close()
    await expect(pending).rejects.toThrow('the database is closed')
    const reopened = new Database(path)
    expect(reopened.query('SELECT count(*) AS n FROM tasks').get()).toEqual({ n: 0 })
    reopened.close()
  })
})

describe.skipIf(process.env.TEST_STORE !== 'postgres')('multi-row creates on PostgreSQL', () => {
  test('creates sent together are one statement, each answered with its own row', async () => {
    await using t = await testApp()
    const key = await t.key()
    // Once the key is verified (and cached), nothing before the store waits on the database.
    expect((await t.request('/v1/tasks', { key })).status).toBe(200)
    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      t.request('/v1/tasks', { method: 'POST', key, json: { title: `together ${i}`, priority: i % 2 ? 'high' : 'low' } })))
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(201))
    const tasks = await Promise.all(responses.map(async (r) => (await r.json()) as Task & { priority: string }))
    expect(tasks.map((task) => [task.title, task.priority])).toEqual(tasks.map((_, i) => [`together ${i}`, i % 2 ? 'high' : 'low']))
    for (const [i, response] of responses.entries()) expect(response.headers.get('location')).toBe(`/v1/tasks/${tasks[i]!.id}`)
    expect(new Set(tasks.map((task) => task.id)).size).toBe(40)
    // Rows written by one transaction share its id.
    expect(await t.sql('SELECT count(DISTINCT xmin::text)::int AS n FROM tasks')).toEqual([{ n: 1 }])
  })

  test('a create the server refuses fails alone; the rest of its batch is stored', async () => {
    await using t = await testApp()
    const store = taskStore(t.database)
    // PostgreSQL's text cannot hold U+0000, so the multi-row INSERT fails and each row is tried alone.
    const titles = ['one', 'two', 'bad\u0000', 'four']
    const results = await Promise.allSettled(titles.map((title) => store.insert('refused', fields(title), 1)))
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
    expect(await t.sql("SELECT title FROM tasks WHERE owner = 'refused' ORDER BY title")).toEqual([{ title: 'four' }, { title: 'one' }, { title: 'two' }])
  })
})
