import { describe, expect, test } from 'bun:test'
import { problemOf, testApp } from './helpers'

describe('problem+json for framework errors', () => {
  test('unknown route is 404', async () => {
    await using t = await testApp()
    const response = await t.request('/v1/nothing-here')
    expect(response.status).toBe(404)
    expect(await problemOf(response)).toMatchObject({ type: 'about:blank', title: 'Not Found', status: 404 })
  })

  test('wrong method on a known route is 405 with Allow', async () => {
    await using t = await testApp()
    const key = await t.key()
    const item = await t.request('/v1/tasks/1', { method: 'POST', key })
    expect(item.status).toBe(405)
    expect(item.headers.get('allow')).toBe('DELETE, GET, HEAD, PATCH, PUT')
    await problemOf(item)
    const collection = await t.request('/v1/tasks', { method: 'DELETE', key })
    expect(collection.status).toBe(405)
    expect(collection.headers.get('allow')).toBe('GET, HEAD, POST')
  })

  test('malformed JSON is 400', async () => {
    await using t = await testApp()
    const key = await t.key()
    for (const body of ['{"title":', '{title: "x"}', '', "{'title':'x'}"]) {
      const response = await t.request('/v1/tasks', { method: 'POST', key, body, headers: { 'content-type': 'application/json' } })
      expect(response.status).toBe(400)
      await problemOf(response)
    }
  })

  test('a body that is not valid UTF-8 is 400', async () => {
    await using t = await testApp()
    const key = await t.key()
    const bytes = new Uint8Array([0x7b, 0x22, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) // {"title":"\xff\xfe"}
    const response = await t.request('/v1/tasks', { method: 'POST', key, body: bytes, headers: { 'content-type': 'application/json' } })
    expect(response.status).toBe(400)
    expect((await problemOf(response)).detail).toContain('UTF-8')
  })

  test('a body that is not JSON is 415, before size and syntax', async () => {
    await using t = await testApp()
    const key = await t.key()
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', null]) {
      const headers: Record<string, string> = type ? { 'content-type': type } : {}
      const response = await t.request('/v1/tasks', { method: 'POST', key, body: 'x'.repeat(2 * 1024 * 1024), headers })
      expect(response.status).toBe(415)
      await problemOf(response)
    }
  })

  test('401 and 403 come before 415, 413 and 400', async () => {
    await using t = await testApp()
    const reader = await t.key(undefined, ['tasks:read'])
    const bodies: Array<[string, string]> = [['text/plain', 'x'], ['application/json', 'x'.repeat(2 * 1024 * 1024)], ['application/json', '{"title":']]
    for (const [type, body] of bodies) {
      const anonymous = await t.request('/v1/tasks', { method: 'POST', body, headers: { 'content-type': type } })
      expect(anonymous.status).toBe(401)
      await problemOf(anonymous)
      expect((await t.request('/v1/tasks', { method: 'POST', key: reader, body, headers: { 'content-type': type } })).status).toBe(403)
    }
  })

  test('a JSON body nested deeper than 64 levels is 400, on any route', async () => {
    await using t = await testApp()
    const key = await t.key()
    const deep = `{"title":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    for (const path of ['/v1/tasks', '/v1/predict']) {
      const response = await t.request(path, { method: 'POST', key, body: deep, headers: { 'content-type': 'application/json' } })
      expect(response.status).toBe(400)
      expect((await problemOf(response)).detail).toBe('the request body nests arrays and objects deeper than 64 levels')
    }
  })

  test('application/json with a charset parameter is accepted', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/tasks', { method: 'POST', key, body: '{"title":"x"}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } })
    expect(response.status).toBe(201)
  })

  test('a body over 1 MiB is 413, declared or streamed', async () => {
    await using t = await testApp()
    const key = await t.key()
    const big = JSON.stringify({ title: 'x', description: 'd'.repeat(1024 * 1024) })
    const declared = await t.request('/v1/tasks', { method: 'POST', key, body: big, headers: { 'content-type': 'application/json' } })
    expect(declared.status).toBe(413)
    await problemOf(declared)
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big))
        controller.close()
      },
    })
    const streamed = await t.request('/v1/tasks', { method: 'POST', key, body: stream, headers: { 'content-type': 'application/json' } })
    expect(streamed.status).toBe(413)
    await problemOf(streamed)
  })

  test('a server fault is 500 problem+json without stack or SQL', async () => {
    await using t = await testApp()
    const key = await t.key()
    await t.sql('DROP TABLE tasks')
    const response = await t.request('/v1/tasks/1', { key })
    expect(response.status).toBe(500)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'the server failed to handle the request' })
    expect(text).not.toMatch(/SELECT|sqlite|postgres|relation|at .*\.ts/i)
  })
})

describe('X-Request-Id', () => {
  test('echoes a sane id and invents one otherwise, on success and error alike', async () => {
    await using t = await testApp()
    const echoed = await t.request('/healthz', { headers: { 'x-request-id': 'abc-123' } })
    expect(echoed.headers.get('x-request-id')).toBe('abc-123')
    const invented = await t.request('/v1/nope')
    expect(invented.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const insane = await t.request('/healthz', { headers: { 'x-request-id': 'x'.repeat(500) } })
    expect(insane.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const unauthorized = await t.request('/v1/tasks', { headers: { 'x-request-id': 'r-1' } })
    expect(unauthorized.headers.get('x-request-id')).toBe('r-1')
  })
})

describe('health', () => {
  test('healthz and readyz answer without a key', async () => {
    await using t = await testApp()
    const live = await t.request('/healthz')
    expect(live.status).toBe(200)
    expect(await live.json()).toEqual({ status: 'ok' })
    const ready = await t.request('/readyz')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ok', checks: { database: true, accepting: true, models: true } })
  })

  test('readyz is 503 when the database has lost its migrations', async () => {
    await using t = await testApp()
    // Readiness asks the migrations table: the one table the connection itself owns.
    await t.sql(t.database.dialect === 'sqlite' ? 'DROP TABLE __drizzle_migrations' : 'DROP TABLE drizzle.__drizzle_migrations')
    const ready = await t.request('/readyz')
    expect(ready.status).toBe(503)
    expect(await problemOf(ready)).toMatchObject({ status: 503, detail: 'not ready: database', checks: { database: false, accepting: true } })
  })

  test('HEAD works wherever GET does', async () => {
    await using t = await testApp()
    for (const path of ['/healthz', '/readyz', '/openapi.json', '/docs', '/redoc']) {
      const response = await t.request(path, { method: 'HEAD' })
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('')
    }
  })
})

describe('readiness during shutdown', () => {
  test('readyz is 503 once the service stops accepting', async () => {
    const { createApp } = await import('../src/app')
    const { Lifecycle } = await import('../src/platform/lifecycle')
    await using t = await testApp()
    const lifecycle = new Lifecycle()
    const app = createApp({ config: t.config, database: t.database, keys: t.keys, log: (await import('../src/platform/logger')).createLogger('silent'), lifecycle, registry: t.registry })
    expect((await app.handle(new Request('http://localhost/readyz'))).status).toBe(200)
    lifecycle.accepting = false
    const response = await app.handle(new Request('http://localhost/readyz'))
    expect(response.status).toBe(503)
    expect(response.headers.get('connection')).toBe('close')
    expect(await problemOf(response)).toMatchObject({ detail: 'not ready: accepting', checks: { database: true, accepting: false } })
  })
})
