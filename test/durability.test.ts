import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { tempDir, testApp, testDatabase } from './helpers'
import { cliKey, startServer } from './server'

describe('concurrent creates', () => {
  test('many parallel creates lose nothing and get unique ids', async () => {
    await using t = await testApp()
    const keys = await Promise.all([t.key('p1'), t.key('p2'), t.key('p3')])
    const responses = await Promise.all(Array.from({ length: 300 }, (_, i) =>
      t.request('/v1/tasks', { method: 'POST', key: keys[i % 3], json: { title: `parallel ${i}` } })))
    expect(responses.map((r) => r.status)).toEqual(Array(300).fill(201))
    const ids = await Promise.all(responses.map(async (r) => ((await r.json()) as { id: number }).id))
    expect(new Set(ids).size).toBe(300)
    for (const key of keys) {
      const page = (await (await t.request('/v1/tasks?limit=100', { key })).json()) as { items: unknown[] }
      expect(page.items.length).toBe(100)
    }
  })

  test('parallel creates over real sockets with the same Idempotency-Key make one row', async () => {
    const database = await testDatabase(tempDir())
    const key = await cliKey(database.url, 'gus')
    const server = await startServer({ DATABASE_URL: database.url })
    const send = () => fetch(`${server.url}/v1/tasks`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'idempotency-key': 'race' },
      body: JSON.stringify({ title: 'once' }),
    })
    const responses = await Promise.all(Array.from({ length: 50 }, send))
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(201))
    const ids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { id: number }).id)))
    expect(ids.size).toBe(1)
    await server[Symbol.asyncDispose]()
    await database.drop()
  })
})

describe('durability', () => {
  test('writes acknowledged before SIGKILL survive, and the database is intact', async () => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'hal')
    const server = await startServer({ DATABASE_URL: databaseUrl })
    const acknowledged: number[] = []
    const enough = Promise.withResolvers<void>()
    // Keep 16 writers busy; kill the process the moment the 400th write is acknowledged.
    const writer = async (w: number) => {
      for (let i = 0; acknowledged.length < 400; i++) {
        const response = await fetch(`${server.url}/v1/tasks`, {
          method: 'POST',
          headers: { 'x-api-key': key, 'content-type': 'application/json' },
          body: JSON.stringify({ title: `w${w}-${i}` }),
        }).catch(() => null)
        if (!response) return
        if (response.status === 201) acknowledged.push(((await response.json()) as { id: number }).id)
        if (acknowledged.length >= 400) enough.resolve()
      }
    }
    const writers = Array.from({ length: 16 }, (_, w) => writer(w))
    await enough.promise
    server.proc.kill('SIGKILL')
    await server.proc.exited
    await Promise.allSettled(writers)
    expect(acknowledged.length).toBeGreaterThanOrEqual(400)

    const db = new Database(join(dir, 'app.sqlite'))
    expect(db.query('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' })
    const stored = new Set((db.query('SELECT id FROM tasks').all() as Array<{ id: number }>).map((row) => row.id))
    const lost = acknowledged.filter((id) => !stored.has(id))
    expect(lost).toEqual([])
    db.close()
  })
})
