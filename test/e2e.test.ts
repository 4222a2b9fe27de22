import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createClient } from '../src/client'
import { tempDir } from './helpers'
import { cliKey, startServer } from './server'

describe('end to end through the Eden client', () => {
  test('create, list, get, patch, replace and delete a task over a real socket', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'erin')
    await using server = await startServer({ DATABASE_URL: databaseUrl })
    const api = createClient(server.url, { apiKey: key })

    const created = await api.v1.tasks.post({ title: 'ship it', priority: 'urgent', due_date: '2030-06-01' })
    expect(created.status).toBe(201)
    const task = created.data!
    expect(task).toMatchObject({ title: 'ship it', owner: 'erin', priority: 'urgent', due_date: '2030-06-01', version: 1 })
    expect(created.response.headers.get('location')).toBe(`/v1/tasks/${task.id}`)

    const page = await api.v1.tasks.get({ query: { sort: '-priority', limit: 10 } })
    expect(page.data?.items.map((item) => item.id)).toEqual([task.id])
    expect(page.data?.next_cursor).toBeNull()

    const read = await api.v1.tasks({ id: task.id }).get()
    expect(read.data).toEqual(task)

    const patched = await api.v1.tasks({ id: task.id }).patch({ completed: true }, { headers: { 'if-match': `"${task.id}.1"` } })
    expect(patched.data).toMatchObject({ completed: true, version: 2 })

    const stale = await api.v1.tasks({ id: task.id }).put({ title: 'again' }, { headers: { 'if-match': `"${task.id}.1"` } })
    expect(stale.status).toBe(412)
    expect(stale.error?.value).toMatchObject({ status: 412, title: 'Precondition Failed' })

    const replaced = await api.v1.tasks({ id: task.id }).put({ title: 'again' })
    expect(replaced.data).toMatchObject({ title: 'again', completed: false, priority: 'normal', version: 3 })

    const removed = await api.v1.tasks({ id: task.id }).delete()
    expect(removed.status).toBe(204)
    expect((await api.v1.tasks({ id: task.id }).get()).status).toBe(404)

    const anonymous = await createClient(server.url).v1.tasks.get({ query: {} })
    expect(anonymous.status).toBe(401)
  })

  test('the example script creates, lists and completes a task', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'fern')
    await using server = await startServer({ DATABASE_URL: databaseUrl })
    const proc = Bun.spawn([process.execPath, 'examples/tasks.ts'], {
      cwd: join(import.meta.dir, '..'),
      env: { ...process.env, TASKMESH_URL: server.url, TASKMESH_KEY: key },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(0)
    expect(out).toMatch(/created \d+ Try taskmesh/)
    expect(out).toMatch(/completed \d+ version 2/)
  })
})
