import { describe, expect, test } from 'bun:test'
import { TaskService, type TaskStore } from '../src/tasks/service'
import { IDEMPOTENCY_PURGE_EVERY, IDEMPOTENCY_TTL_MS } from '../src/tasks/query'
import { taskStore } from '../src/tasks/store'
import { problemOf, testApp, type TestApp } from './helpers'
import { eventually } from './eventually'

type Task = {
  id: number; title: string; description: string | null; owner: string; priority: string
  due_date: string | null; completed: boolean; created_at: string; updated_at: string; version: number
}

const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/

async function create(t: TestApp, key: string, json: Record<string, unknown>): Promise<Task> {
  const response = await t.request('/v1/tasks', { method: 'POST', key, json })
  expect(response.status).toBe(201)
  return (await response.json()) as Task
}

describe('POST /v1/tasks', () => {
  test('creates a task with defaults, Location and ETag', async () => {
    await using t = await testApp()
    const key = await t.key('alice')
    const response = await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'Write report' } })
    expect(response.status).toBe(201)
    const task = (await response.json()) as Task
    expect(task).toEqual({
      id: task.id, title: 'Write report', description: null, owner: 'alice', priority: 'normal',
      due_date: null, completed: false, created_at: task.created_at, updated_at: task.created_at, version: 1,
    })
    expect(task.created_at).toMatch(rfc3339)
    expect(response.headers.get('location')).toBe(`/v1/tasks/${task.id}`)
    expect(response.headers.get('etag')).toBe(`"${task.id}.1"`)
  })

  test('keeps every client field and ignores none', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'ünïcødé ✓ 日本', description: 'd', priority: 'urgent', due_date: '2030-02-28', completed: true })
    expect(task).toMatchObject({ title: 'ünïcødé ✓ 日本', description: 'd', priority: 'urgent', due_date: '2030-02-28', completed: true })
  })

  test('owner comes from the key, never from the body', async () => {
    await using t = await testApp()
    const key = await t.key('alice')
    const response = await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'x', owner: 'mallory' } })
    expect(response.status).toBe(422)
    const problem = await problemOf(response)
    expect(problem.errors).toEqual([{ field: 'body.owner', message: expect.any(String) }])
  })

  test.each([
    ['id', { title: 'x', id: 5 }, 'body.id'],
    ['version', { title: 'x', version: 9 }, 'body.version'],
    ['missing title', {}, 'body.title'],
    ['empty title', { title: '' }, 'body.title'],
    ['blank title', { title: '   ' }, 'body.title'],
    ['long title', { title: 'x'.repeat(201) }, 'body.title'],
    ['title not a string', { title: 42 }, 'body.title'],
    ['long description', { title: 'x', description: 'd'.repeat(5001) }, 'body.description'],
    ['bad priority', { title: 'x', priority: 'Normal' }, 'body.priority'],
    ['bad date format', { title: 'x', due_date: '30/01/2030' }, 'body.due_date'],
    ['impossible date', { title: 'x', due_date: '2030-02-30' }, 'body.due_date'],
    ['completed as string', { title: 'x', completed: 'true' }, 'body.completed'],
    ['U+0000 in the title', { title: 'a\u0000b' }, 'body.title'],
    ['U+0000 in the description', { title: 'x', description: 'd\u0000' }, 'body.description'],
    ['a lone surrogate in the title', { title: 'x\ud800' }, 'body.title'],
  ])('rejects %s with 422 naming the field', async (_, json, field) => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/tasks', { method: 'POST', key, json })
    expect(response.status).toBe(422)
    const problem = await problemOf(response)
    expect(problem.errors?.map((e) => e.field)).toContain(field)
    const list = await t.request('/v1/tasks', { key })
    expect(((await list.json()) as { items: Task[] }).items).toEqual([])
  })

  test('accepts 200 characters of title and 5000 of description', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'x'.repeat(200), description: 'd'.repeat(5000) })
    expect(task.title.length).toBe(200)
    expect(task.description?.length).toBe(5000)
  })

  test('a body that is not an object is 422', async () => {
    await using t = await testApp()
    const key = await t.key()
    for (const json of [[], 'title', 5, null]) {
      const response = await t.request('/v1/tasks', { method: 'POST', key, json })
      expect(response.status).toBe(422)
      await problemOf(response)
    }
  })

  test('SQL metacharacters are stored as plain text', async () => {
    await using t = await testApp()
    const key = await t.key()
    const title = `Robert'); DROP TABLE tasks;-- "%_\\`
    const task = await create(t, key, { title })
    const read = await t.request(`/v1/tasks/${task.id}`, { key })
    expect(((await read.json()) as Task).title).toBe(title)
  })
})

describe('text fields', () => {
  // PostgreSQL's text cannot hold U+0000 and UTF-8 cannot encode a lone surrogate: both stores refuse them alike.
  test('U+0000 and lone surrogates are a 422 naming the field on PUT, PATCH and the title search', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'clean' })
    const attempts: Array<[string, RequestInit & { json?: unknown }, string]> = [
      [`/v1/tasks/${task.id}`, { method: 'PUT', json: { title: 'x', description: 'a\u0000' } }, 'body.description'],
      [`/v1/tasks/${task.id}`, { method: 'PATCH', json: { title: '\u0000' } }, 'body.title'],
      [`/v1/tasks/${task.id}`, { method: 'PATCH', json: { description: '\udc00' } }, 'body.description'],
      ['/v1/tasks?q=%00', {}, 'query.q'],
    ]
    for (const [path, init, field] of attempts) {
      const response = await t.request(path, { ...init, key })
      expect(response.status).toBe(422)
      expect((await problemOf(response)).errors).toEqual([{ field, message: expect.any(String) }])
    }
    const read = await t.request(`/v1/tasks/${task.id}`, { key })
    expect(await read.json()).toMatchObject({ title: 'clean', description: null, version: 1 })
  })
})

describe('Idempotency-Key', () => {
  test('a repeat returns the same task and makes one row', async () => {
    await using t = await testApp()
    const key = await t.key()
    const send = () => t.request('/v1/tasks', { method: 'POST', key, json: { title: 'once', priority: 'high' }, headers: { 'idempotency-key': 'k-1' } })
    const first = await send()
    const second = await send()
    expect(first.status).toBe(201)
    expect(second.status).toBe(201)
    expect(second.headers.get('idempotent-replayed')).toBe('true')
    expect(await second.json()).toEqual(await first.json())
    const list = (await (await t.request('/v1/tasks', { key })).json()) as { items: Task[] }
    expect(list.items.length).toBe(1)
  })

  test('field order does not make a different request', async () => {
    await using t = await testApp()
    const key = await t.key()
    const headers = { 'idempotency-key': 'order' }
    const a = await t.request('/v1/tasks', { method: 'POST', key, headers, body: '{"title":"a","priority":"low"}', })
    const b = await t.request('/v1/tasks', { method: 'POST', key, headers: { ...headers, 'content-type': 'application/json' }, body: '{"priority":"low","title":"a"}' })
    expect(b.status).toBe(201)
    expect(a.status).toBe(415)
    const c = await t.request('/v1/tasks', { method: 'POST', key, headers, json: { title: 'a', priority: 'low' } })
    expect(((await c.json()) as Task).id).toBe(((await b.json()) as Task).id)
  })

  test('the same key with another body is 422 and creates nothing', async () => {
    await using t = await testApp()
    const key = await t.key()
    const headers = { 'idempotency-key': 'k-2' }
    expect((await t.request('/v1/tasks', { method: 'POST', key, headers, json: { title: 'a' } })).status).toBe(201)
    const conflict = await t.request('/v1/tasks', { method: 'POST', key, headers, json: { title: 'b' } })
    expect(conflict.status).toBe(422)
    expect((await problemOf(conflict)).errors?.[0]?.field).toBe('header.idempotency-key')
    const list = (await (await t.request('/v1/tasks', { key })).json()) as { items: Task[] }
    expect(list.items.map((task) => task.title)).toEqual(['a'])
  })

  test('keys are per owner', async () => {
    await using t = await testApp()
    const alice = await t.key()
    const bob = await t.key()
    const headers = { 'idempotency-key': 'shared' }
    const a = (await (await t.request('/v1/tasks', { method: 'POST', key: alice, headers, json: { title: 'a' } })).json()) as Task
    const b = await t.request('/v1/tasks', { method: 'POST', key: bob, headers, json: { title: 'b' } })
    expect(b.status).toBe(201)
    expect(((await b.json()) as Task).id).not.toBe(a.id)
  })

  test('an unusable key is 422', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/tasks', { method: 'POST', key, headers: { 'idempotency-key': 'x'.repeat(256) }, json: { title: 'a' } })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors?.[0]?.field).toBe('header.idempotency-key')
  })
})

describe('idempotency keys expire', () => {
  test(`keys older than the TTL are deleted within ${IDEMPOTENCY_PURGE_EVERY} idempotent creates`, async () => {
    await using t = await testApp()
    const store = taskStore(t.database)
    const fields = { title: 'x', description: null, priority: 1, dueDate: null, completed: false }
    const idempotent = (key: string) => ({ key, fingerprint: key, render: () => '{}' })
    const now = Date.now()
    await store.insert('purged', fields, now - IDEMPOTENCY_TTL_MS - 1000, idempotent('expired'))
    await store.insert('purged', fields, now - IDEMPOTENCY_TTL_MS + 60_000, idempotent('recent'))
    expect(await t.sql("SELECT key FROM idempotency_keys WHERE owner = 'purged' ORDER BY key")).toEqual([{ key: 'expired' }, { key: 'recent' }])
    await Promise.all(Array.from({ length: IDEMPOTENCY_PURGE_EVERY }, (_, i) => store.insert('filler', fields, now, idempotent(`k${i}`))))
    // No create waits for the purge (PostgreSQL runs it beside them).
    await eventually(async () => (await t.sql("SELECT key FROM idempotency_keys WHERE owner = 'purged'")).length === 1, { what: 'the expired key is purged' })
    expect(await t.sql("SELECT key FROM idempotency_keys WHERE owner = 'purged'")).toEqual([{ key: 'recent' }])
  })
})

describe('GET /v1/tasks/{id}', () => {
  test('returns the task with its ETag, and 304 for a matching If-None-Match', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'x' })
    const response = await t.request(`/v1/tasks/${task.id}`, { key })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual(task)
    const etag = response.headers.get('etag')!
    expect(etag).toBe(`"${task.id}.1"`)
    const cached = await t.request(`/v1/tasks/${task.id}`, { key, headers: { 'if-none-match': etag } })
    expect(cached.status).toBe(304)
    expect(await cached.text()).toBe('')
    expect(cached.headers.get('etag')).toBe(etag)
    const stale = await t.request(`/v1/tasks/${task.id}`, { key, headers: { 'if-none-match': '"1.99"' } })
    expect(stale.status).toBe(200)
  })

  test('a missing task is 404; a non-numeric id is 422', async () => {
    await using t = await testApp()
    const key = await t.key()
    const missing = await t.request('/v1/tasks/999999', { key })
    expect(missing.status).toBe(404)
    await problemOf(missing)
    for (const id of ['abc', '1.5', '-1', '0', '99999999999999999999']) {
      const bad = await t.request(`/v1/tasks/${id}`, { key })
      expect(bad.status).toBe(422)
      expect((await problemOf(bad)).errors?.[0]?.field).toBe('params.id')
    }
  })

  test('HEAD answers like GET without a body', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'x' })
    const response = await t.request(`/v1/tasks/${task.id}`, { key, method: 'HEAD' })
    expect(response.status).toBe(200)
    expect(response.headers.get('etag')).toBe(`"${task.id}.1"`)
    expect(await response.text()).toBe('')
  })
})

describe('PUT /v1/tasks/{id}', () => {
  test('replaces every client field; omitted ones take their defaults', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a', description: 'd', priority: 'high', due_date: '2030-01-01', completed: true })
    const response = await t.request(`/v1/tasks/${task.id}`, { method: 'PUT', key, json: { title: 'b' } })
    expect(response.status).toBe(200)
    const replaced = (await response.json()) as Task
    expect(replaced).toEqual({
      ...task, title: 'b', description: null, priority: 'normal', due_date: null, completed: false,
      version: 2, updated_at: replaced.updated_at,
    })
    expect(response.headers.get('etag')).toBe(`"${task.id}.2"`)
  })

  test('honours If-Match: 412 when stale, 200 when current', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const stale = await t.request(`/v1/tasks/${task.id}`, { method: 'PUT', key, json: { title: 'b' }, headers: { 'if-match': `"${task.id}.7"` } })
    expect(stale.status).toBe(412)
    await problemOf(stale)
    const fresh = await t.request(`/v1/tasks/${task.id}`, { method: 'PUT', key, json: { title: 'b' }, headers: { 'if-match': `"${task.id}.1"` } })
    expect(fresh.status).toBe(200)
    const unchanged = (await (await t.request(`/v1/tasks/${task.id}`, { key })).json()) as Task
    expect(unchanged.title).toBe('b')
    expect(unchanged.version).toBe(2)
  })

  test('rejects unknown fields and server-owned fields', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    for (const extra of [{ version: 5 }, { owner: 'x' }, { created_at: 'x' }, { colour: 'red' }]) {
      const response = await t.request(`/v1/tasks/${task.id}`, { method: 'PUT', key, json: { title: 'b', ...extra } })
      expect(response.status).toBe(422)
    }
    expect(((await (await t.request(`/v1/tasks/${task.id}`, { key })).json()) as Task).version).toBe(1)
  })
})

describe('PATCH /v1/tasks/{id}', () => {
  test('merges the given fields and bumps the version', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a', description: 'd', priority: 'high', due_date: '2030-01-01' })
    const response = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json: { completed: true } })
    expect(response.status).toBe(200)
    const patched = (await response.json()) as Task
    expect(patched).toEqual({ ...task, completed: true, version: 2, updated_at: patched.updated_at })
  })

  test('null clears a nullable field and resets the others to their default', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a', description: 'd', priority: 'high', due_date: '2030-01-01', completed: true })
    const response = await t.request(`/v1/tasks/${task.id}`, {
      method: 'PATCH', key, json: { description: null, due_date: null, priority: null, completed: null },
      headers: { 'content-type': 'application/merge-patch+json' },
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ title: 'a', description: null, due_date: null, priority: 'normal', completed: false })
  })

  test('a null title, an unknown field or a bad value is 422 and changes nothing', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    for (const json of [{ title: null }, { owner: 'x' }, { priority: 'top' }, { due_date: '2030-13-01' }, { id: 9 }]) {
      const response = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json })
      expect(response.status).toBe(422)
      await problemOf(response)
    }
    expect(await (await t.request(`/v1/tasks/${task.id}`, { key })).json()).toEqual(task)
  })

  test('honours If-Match', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const ok = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json: { title: 'b' }, headers: { 'if-match': `"${task.id}.1"` } })
    expect(ok.status).toBe(200)
    const stale = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json: { title: 'c' }, headers: { 'if-match': `"${task.id}.1"` } })
    expect(stale.status).toBe(412)
    const star = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json: { title: 'd' }, headers: { 'if-match': '*' } })
    expect(star.status).toBe(200)
    expect(await star.json()).toMatchObject({ title: 'd', version: 3 })
  })

  test('is one store call, with no read before it, whatever the outcome', async () => {
    await using t = await testApp()
    const calls: string[] = []
    const store = taskStore(t.database)
    const counted = new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name) as unknown
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          calls.push(String(name))
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
      },
    }) as TaskStore
    const service = new TaskService(counted)
    const { task } = await service.create('patcher', { title: 'a', description: 'd', due_date: '2030-01-01' })
    calls.length = 0
    expect(await service.patch('patcher', task.id, { priority: 'high', description: null }, null)).toEqual({
      ...task, priority: 'high', description: null, version: 2, updated_at: expect.any(String),
    })
    await expect(service.patch('patcher', task.id, { title: 'b' }, `"${task.id}.1"`)).rejects.toMatchObject({ status: 412 })
    await expect(service.patch('patcher', task.id + 1000, { title: 'b' }, null)).rejects.toMatchObject({ status: 404 })
    await expect(service.patch('someone-else', task.id, { title: 'b' }, `"${task.id}.2"`)).rejects.toMatchObject({ status: 404 })
    expect(calls).toEqual(['patch', 'patch', 'patch', 'patch'])
  })

  test('concurrent patches without If-Match all apply; with the same If-Match one wins', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const patch = (json: unknown, headers: Record<string, string> = {}) =>
      t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json, headers })
    const free = await Promise.all(Array.from({ length: 10 }, (_, i) => patch({ title: `t${i}` })))
    expect(free.map((r) => r.status)).toEqual(Array(10).fill(200))
    const versions = await Promise.all(free.map(async (r) => ((await r.json()) as Task).version))
    expect(versions.toSorted((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    const guarded = await Promise.all(Array.from({ length: 10 }, (_, i) => patch({ priority: i % 2 ? 'high' : 'low' }, { 'if-match': `"${task.id}.11"` })))
    expect(guarded.map((r) => r.status).toSorted()).toEqual([200, ...Array(9).fill(412)])
    expect(await (await t.request(`/v1/tasks/${task.id}`, { key })).json()).toMatchObject({ version: 12 })
  })

  test('an empty patch still answers the task', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const response = await t.request(`/v1/tasks/${task.id}`, { method: 'PATCH', key, json: {} })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ title: 'a' })
  })
})

describe('DELETE /v1/tasks/{id}', () => {
  test('204, then 404', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const response = await t.request(`/v1/tasks/${task.id}`, { method: 'DELETE', key })
    expect(response.status).toBe(204)
    expect(await response.text()).toBe('')
    expect((await t.request(`/v1/tasks/${task.id}`, { key })).status).toBe(404)
    expect((await t.request(`/v1/tasks/${task.id}`, { method: 'DELETE', key })).status).toBe(404)
  })

  test('honours If-Match', async () => {
    await using t = await testApp()
    const key = await t.key()
    const task = await create(t, key, { title: 'a' })
    const stale = await t.request(`/v1/tasks/${task.id}`, { method: 'DELETE', key, headers: { 'if-match': '"999.1"' } })
    expect(stale.status).toBe(412)
    expect((await t.request(`/v1/tasks/${task.id}`, { key })).status).toBe(200)
    const ok = await t.request(`/v1/tasks/${task.id}`, { method: 'DELETE', key, headers: { 'if-match': `"${task.id}.1"` } })
    expect(ok.status).toBe(204)
  })
})

describe('owner isolation', () => {
  test("another owner's task is 404 for every verb and never listed", async () => {
    await using t = await testApp()
    const alice = await t.key('alice')
    const bob = await t.key('bob')
    const task = await create(t, alice, { title: 'private' })
    const path = `/v1/tasks/${task.id}`
    const attempts: Array<[string, Record<string, unknown> | undefined]> = [
      ['GET', undefined], ['HEAD', undefined], ['PUT', { title: 'x' }], ['PATCH', { title: 'x' }], ['DELETE', undefined],
    ]
    for (const [method, json] of attempts) {
      const response = await t.request(path, { method, key: bob, json })
      expect(response.status).toBe(404)
    }
    const ifMatch = await t.request(path, { method: 'PATCH', key: bob, json: { title: 'x' }, headers: { 'if-match': `"${task.id}.1"` } })
    expect(ifMatch.status).toBe(404)
    const list = (await (await t.request('/v1/tasks', { key: bob })).json()) as { items: Task[] }
    expect(list.items).toEqual([])
    expect(await (await t.request(path, { key: alice })).json()).toEqual(task)
  })

  test('two keys of the same owner see the same tasks', async () => {
    await using t = await testApp()
    const one = await t.key('carol')
    const two = await t.key('carol')
    const task = await create(t, one, { title: 'shared' })
    expect((await t.request(`/v1/tasks/${task.id}`, { key: two })).status).toBe(200)
  })
})
