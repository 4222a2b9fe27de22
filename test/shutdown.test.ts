import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { tempDir } from './helpers'
import { cliKey, startServer } from './server'

describe('graceful shutdown', () => {
  test('SIGTERM mid-load: every accepted request is answered, every acknowledged write is kept, exit 0', async () => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'sam')
    const server = await startServer({ DATABASE_URL: databaseUrl })
    const acknowledged: number[] = []
    const failures: string[] = []
    let refused = 0
    let signalled = false
    const started = Promise.withResolvers<void>()
    // Writers on kept-alive connections; after SIGTERM a refused *connection* is fine, a failed request is not.
    const writer = async (w: number) => {
      for (let i = 0; ; i++) {
        let response: Response
        try {
          response = await fetch(`${server.url}/v1/tasks`, {
            method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ title: `w${w}-${i}` }),
          })
        } catch (error) {
          if (!signalled) failures.push(`before SIGTERM: ${(error as Error).message}`)
          else refused++
          return
        }
        if (response.status !== 201) failures.push(`status ${response.status}`)
        else acknowledged.push(((await response.json()) as { id: number }).id)
        if (acknowledged.length >= 50) started.resolve()
      }
    }
    const writers = Array.from({ length: 12 }, (_, w) => writer(w))
    await started.promise
    signalled = true
    server.proc.kill('SIGTERM')
    const code = await server.proc.exited
    await Promise.all(writers)
    expect(code).toBe(0)
    expect(failures).toEqual([])
    expect(refused).toBeLessThanOrEqual(12)
    expect(server.output()).toContain('"msg":"stopped"')
    const db = new Database(join(dir, 'app.sqlite'))
    const stored = new Set((db.query('SELECT id FROM tasks').all() as Array<{ id: number }>).map((row) => row.id))
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([])
    expect(db.query('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' })
    db.close()
  })

  test('readyz turns 503 at once while requests drain', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    await using server = await startServer({ DATABASE_URL: databaseUrl, SHUTDOWN_TIMEOUT: '5' })
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
    // A slow reader keeps one request in flight, so the drain cannot finish while we look.
    const slow = fetch(`${server.url}/docs/assets/swagger-ui-bundle.js`)
    server.proc.kill('SIGTERM')
    let status = 200
    for (let i = 0; i < 200 && status === 200; i++) {
      const response = await fetch(`${server.url}/readyz`).catch(() => null)
      if (!response) break
      status = response.status
      expect(response.headers.get('connection') === 'close' || status === 200).toBe(true)
    }
    expect(status).toBe(503)
    expect((await slow).status).toBe(200)
    expect(await server.proc.exited).toBe(0)
  })
})

describe('access log', () => {
  test('one JSON line per request with id, route, status, duration and key id, never the key', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'tia')
    const server = await startServer({ DATABASE_URL: databaseUrl })
    const response = await fetch(`${server.url}/v1/tasks?limit=5`, { headers: { 'x-api-key': key, 'x-request-id': 'log-test-1' } })
    expect(response.status).toBe(200)
    await fetch(`${server.url}/v1/tasks`, { headers: { 'x-api-key': 'tm_AAAAAAAA_' + 'x'.repeat(40), 'x-request-id': 'log-test-2' } })
    server.proc.kill('SIGTERM')
    await server.proc.exited
    const lines = server.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
    const first = lines.find((line) => line.requestId === 'log-test-1')
    expect(first).toMatchObject({ msg: 'request', method: 'GET', route: '/v1/tasks', path: '/v1/tasks', status: 200, keyId: key.split('_')[1] })
    expect(typeof first?.durationMs).toBe('number')
    expect(lines.find((line) => line.requestId === 'log-test-2')).toMatchObject({ status: 401, route: '/v1/tasks' })
    expect(server.output()).not.toContain(key)
    expect(server.output()).not.toContain(key.split('_')[2]!)
  })
})
