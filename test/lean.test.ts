// The lean lane (src/platform/lean.ts) answers GET /v1/tasks/{id}, GET /v1/tasks and
// POST /v1/models/{name}/predict over HTTP past Elysia's lifecycle.
// Whatever it answers must be what Elysia answers for the same request: here the real server (lean
// lane) and the same app in process (Elysia's pipeline) serve one database, and every case is asked
// of both and compared — status, body, and every header but the date and a fresh request id.
import { afterAll, describe, expect, test } from 'bun:test'
import { Elysia } from 'elysia'
import { queryReader } from '../src/platform/lean'
import { TaskModel } from '../src/tasks/model'
import { eventually } from './eventually'
import { testApp } from './helpers'
import { startServer } from './server'

const ignored = new Set(['date', 'content-length'])

/** Status, body and headers, with the request id left out unless the caller sent one. */
async function shape(response: Response, keepRequestId: boolean) {
  const headers = Object.fromEntries([...response.headers].filter(([name]) => !ignored.has(name) && (keepRequestId || name !== 'x-request-id')))
  const text = await response.text()
  return { status: response.status, headers, body: text === '' ? '' : JSON.parse(text) as unknown }
}

/**
 * The same service twice on one database, over HTTP (where the lane answers) and in process
 * (Elysia), stopped after the describe: `both` asks each the same request.
 */
async function servedTwice() {
  const t = await testApp({ RATE_LIMIT: '1000/1000' })
  const server = await startServer({ DATABASE_URL: t.config.databaseUrl, MODELS_DIR: t.config.modelsDir, RATE_LIMIT: '1000/1000' })
  afterAll(async () => {
    await server[Symbol.asyncDispose]()
    await t[Symbol.asyncDispose]()
  })
  const both = async (at: string, init: RequestInit, keepRequestId = true) => {
    const ask = (base: string, send: (request: Request) => Promise<Response>) => send(new Request(`${base}${at}`, init)).then((r) => shape(r, keepRequestId))
    const answers = await Promise.all([ask(server.url, fetch), ask('http://localhost', (request) => t.app.handle(request))])
    // The rate limit's remaining count differs (two processes, two buckets); its presence and policy do not.
    for (const s of answers) s.headers.ratelimit = String(s.headers.ratelimit ?? '').replace(/r=\d+/, 'r=N')
    return answers
  }
  /** http_requests_total of one series, as the HTTP server's /metrics shows it. */
  const counted = async (method: string, route: string, status: number) => {
    const text = await (await fetch(`${server.url}/metrics`)).text()
    const series = `http_requests_total{method="${method}",route="${route}",status="${status}"} `
    const line = text.split('\n').find((l) => l.startsWith(series))
    return line === undefined ? 0 : Number(line.slice(series.length))
  }
  return { t, server, both, counted }
}

describe('the lean lane answers as Elysia does', async () => {
  const { t, server, both, counted } = await servedTwice()
  const alice = await t.key('alice')
  const bob = await t.key('bob')
  const readless = await t.key('carol', ['tasks:write'])
  const task = (await (await t.request('/v1/tasks', { method: 'POST', key: alice, json: { title: 'lean', description: 'both ways', due_date: '2030-01-02' } })).json()) as { id: number }
  const etag = `"${task.id}.1"`

  const cases: Array<[string, string, Record<string, string>, number]> = [
    ['its owner: 200 with the task and its ETag', `/v1/tasks/${task.id}`, { 'x-api-key': alice, 'x-request-id': 'req-1' }, 200],
    ['a Bearer key', `/v1/tasks/${task.id}`, { authorization: `Bearer ${alice}`, 'x-request-id': 'req-2' }, 200],
    ['If-None-Match: 304', `/v1/tasks/${task.id}`, { 'x-api-key': alice, 'if-none-match': etag, 'x-request-id': 'req-3' }, 304],
    ['a stale If-None-Match: 200', `/v1/tasks/${task.id}`, { 'x-api-key': alice, 'if-none-match': '"1.0"', 'x-request-id': 'req-4' }, 200],
    ['another owner: 404', `/v1/tasks/${task.id}`, { 'x-api-key': bob, 'x-request-id': 'req-5' }, 404],
    ['no key: 401', `/v1/tasks/${task.id}`, { 'x-request-id': 'req-6' }, 401],
    ['a made-up key: 401', `/v1/tasks/${task.id}`, { 'x-api-key': `tm_abcdEFGH_${'x'.repeat(40)}`, 'x-request-id': 'req-7' }, 401],
    ['a key without tasks:read: 403', `/v1/tasks/${task.id}`, { 'x-api-key': readless, 'x-request-id': 'req-8' }, 403],
    ['an id that is not a plain decimal: 422', '/v1/tasks/0x1', { 'x-api-key': alice, 'x-request-id': 'req-9' }, 422],
    ['an id past the range: 422', '/v1/tasks/99999999999999999999', { 'x-api-key': alice, 'x-request-id': 'req-10' }, 422],
    ['a missing task: 404', '/v1/tasks/987654', { 'x-api-key': alice, 'x-request-id': 'req-11' }, 404],
    ['an unusable request id is replaced', `/v1/tasks/${task.id}`, { 'x-api-key': alice, 'x-request-id': 'bad id with spaces' }, 200],
  ]

  test.each(cases)('%s', async (_, path, headers, status) => {
    const keep = headers['x-request-id'] !== undefined && !headers['x-request-id'].includes(' ')
    const [lean, elysia] = await both(path, { headers }, keep)
    expect(lean.status).toBe(status)
    expect(lean).toEqual(elysia)
    if (!keep) expect((await fetch(`${server.url}${path}`, { headers })).headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('HEAD is answered as before: the GET\'s headers and no body', async () => {
    const head = await fetch(`${server.url}/v1/tasks/${task.id}`, { method: 'HEAD', headers: { 'x-api-key': alice } })
    expect(head.status).toBe(200)
    expect(head.headers.get('etag')).toBe(etag)
    expect(await head.text()).toBe('')
  })

  test('lean requests are counted and logged like any other', async () => {
    const count = () => counted('GET', '/v1/tasks/:id', 200)
    const before = await count()
    for (let i = 0; i < 3; i++) expect((await fetch(`${server.url}/v1/tasks/${task.id}`, { headers: { 'x-api-key': alice, 'x-request-id': `counted-${i}` } })).status).toBe(200)
    expect(await count()).toBe(before + 3)
    // Access lines are written every 100 ms.
    const lines = await eventually(() => {
      const found = server.output().split('\n').filter((line) => line.includes('"requestId":"counted-'))
      return found.length === 3 && found
    }, { what: 'the three access lines are written' })
    expect(JSON.parse(lines[0]!)).toMatchObject({ method: 'GET', route: '/v1/tasks/:id', path: `/v1/tasks/${task.id}`, status: 200, msg: 'request' })
  })
})

describe('the lean lane reads a query as Elysia does', () => {
  const read = queryReader(TaskModel.listQuery)!
  const elysia = new Elysia().get('/v1/tasks', ({ query }) => query, { query: TaskModel.listQuery })
  const asElysia = async (search: string) => (await elysia.handle(new Request(`http://localhost/v1/tasks${search}`))).json() as Promise<unknown>

  // What clients send: the lane reads it, into exactly the object Elysia hands the handler.
  test.each(['', '?', '?limit=5', '?limit=100&cursor=WzEsMSwxNzY0MzAxNzk5Nzk0LDgwXQ', '?completed=false&priority=high&sort=-due_date',
    '?due_before=2031-01-31&due_after=2020-02-29&q=report', '?completed=true&limit=1'])('%p is read by the lane', async (search) => {
    const query = read(`http://localhost/v1/tasks${search}`)
    expect(query).not.toBeNull()
    expect(query).toEqual(await asElysia(search) as Record<string, unknown>)
  })

  // Anything else is Elysia's to read (or to refuse with its 422).
  test.each(['?limit=0', '?limit=101', '?limit=abc', '?limit=1e1', '?limit=007', '?limit=', '?limit=2&limit=3', '?q=two%20words', '?q=a+b',
    '?completed=yes', '?priority=someday', '?due_before=2031-02-30', '?extra=1', '?limit', '?&limit=2'])('%p is left to Elysia', (search) => {
    expect(read(`http://localhost/v1/tasks${search}`)).toBeNull()
  })
})

describe('the lean lane answers lists as Elysia does', async () => {
  const { t, both } = await servedTwice()
  const key = await t.key('hana')
  const writeOnly = await t.key('ivan', ['tasks:write'])
  for (let i = 0; i < 5; i++) {
    const json = { title: `report ${i}`, priority: i % 2 ? 'high' : 'normal', completed: i === 4, due_date: `2030-01-0${i + 1}` }
    expect((await t.request('/v1/tasks', { method: 'POST', key, json })).status).toBe(201)
  }
  const first = (await (await t.request('/v1/tasks?limit=2', { key })).json()) as { next_cursor: string }

  const cases: Array<[string, string, Record<string, string>, number]> = [
    ['the first page', '/v1/tasks', { 'x-api-key': key }, 200],
    ['a page of 2 and its cursor', '/v1/tasks?limit=2', { 'x-api-key': key }, 200],
    ['the next page', `/v1/tasks?limit=2&cursor=${first.next_cursor}`, { authorization: `Bearer ${key}` }, 200],
    ['filters and a sort', '/v1/tasks?completed=false&priority=high&sort=-due_date', { 'x-api-key': key }, 200],
    ['dates and a search', '/v1/tasks?due_before=2030-01-04&due_after=2030-01-01&q=report', { 'x-api-key': key }, 200],
    ['an encoded search (left to Elysia)', '/v1/tasks?q=report%203', { 'x-api-key': key }, 200],
    ['a cursor that is not one: 422', '/v1/tasks?cursor=garbage', { 'x-api-key': key }, 422],
    ['a limit past 100 (left to Elysia): 422', '/v1/tasks?limit=101', { 'x-api-key': key }, 422],
    ['an unknown parameter (left to Elysia): 422', '/v1/tasks?colour=red', { 'x-api-key': key }, 422],
    ['no key: 401', '/v1/tasks?limit=2', {}, 401],
    ['a key without tasks:read: 403', '/v1/tasks', { 'x-api-key': writeOnly }, 403],
  ]

  test.each(cases)('%s', async (_, at, headers, status) => {
    const [lean, elysia] = await both(at, { headers: { ...headers, 'x-request-id': 'same' } })
    expect(lean.status).toBe(status)
    expect(lean).toEqual(elysia)
  })
})

describe('the lean lane answers predictions as Elysia does', async () => {
  const { t, server, both, counted } = await servedTwice()
  const key = await t.key('frank', ['predict'])
  const taskKey = await t.key('gina', ['tasks:write'])
  const json = 'application/json'
  const row = { feature1: 1.5, feature2: 2, feature3: 0.5 }
  const deep = `{"features":${'['.repeat(70)}${']'.repeat(70)}}`
  const pickle = new Uint8Array([0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x7d, 0x94, 0x2e])
  const path = '/v1/models/seed-linear/predict'
  // {"features":{"feature1":1,"f\xff":2}}: a byte that is not UTF-8 inside a name.
  const notUtf8Name = new TextEncoder().encode('{"features":{"feature1":1,"f_":2}}')
  notUtf8Name[notUtf8Name.indexOf(0x5f)] = 0xff

  // name, path, headers, body (a string or bytes, sent as is to both), status
  const cases: Array<[string, string, Record<string, string>, string | Uint8Array | undefined, number]> = [
    ['one row by name: 200', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row }), 200],
    ['a batch of positional rows: 200', path, { authorization: `Bearer ${key}`, 'content-type': 'application/json; charset=utf-8' }, JSON.stringify({ instances: [[1, 2, 3], [0, 0, 0]] }), 200],
    ['a field the schema does not know: 422', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row, extra: 1 }), 422],
    ['instances that are not an array: 422', path, { 'x-api-key': key, 'content-type': json }, '{"instances":{"a":1}}', 422],
    ['a feature the model does not have: 422', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: { ...row, feature9: 1 } }), 422],
    ['both features and instances: 422', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row, instances: [[1, 2, 3]] }), 422],
    ['a model that is not loaded: 404', '/v1/models/no-such-model/predict', { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row }), 404],
    ['a name that is not a model name: 404', '/v1/models/bad%20name/predict', { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row }), 404],
    ['an overlong URL (left to Elysia): 414', `/v1/models/${'m'.repeat(9000)}/predict`, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: row }), 414],
    ['no key: 401, body unread', path, { 'content-type': json }, JSON.stringify({ features: row }), 401],
    ['a key without predict: 403', path, { 'x-api-key': taskKey, 'content-type': json }, JSON.stringify({ features: row }), 403],
    // Predictions are read by Bun's parser (nativeJson): a pickle does not parse.
    ['a pickle sent as JSON: 400', path, { 'x-api-key': key, 'content-type': json }, pickle, 400],
    ['text/plain: 415', path, { 'x-api-key': key, 'content-type': 'text/plain' }, JSON.stringify({ features: row }), 415],
    ['a body without a content type: 415', path, { 'x-api-key': key }, JSON.stringify({ features: row }), 415],
    ['JSON that does not parse: 400', path, { 'x-api-key': key, 'content-type': json }, '{"features": {', 400],
    ['a blank body: 400', path, { 'x-api-key': key, 'content-type': json }, '   ', 400],
    ['bytes that are not UTF-8: 400', path, { 'x-api-key': key, 'content-type': json }, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 400],
    ['a feature name that is not UTF-8: 400', path, { 'x-api-key': key, 'content-type': json }, notUtf8Name, 400],
    ['a feature name holding U+FFFD: 400', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: { ...row, 'feature\ufffd': 1 } }), 400],
    ['a feature name in UTF-8 the model lacks: 422', path, { 'x-api-key': key, 'content-type': json }, JSON.stringify({ features: { ...row, 'café': 1 } }), 422],
    ['nesting past 64 levels: 400', path, { 'x-api-key': key, 'content-type': json }, deep, 400],
    ['no body at all: 422', path, { 'x-api-key': key }, undefined, 422],
    ['a body past the 8 MiB limit: 413', path, { 'x-api-key': key, 'content-type': json }, `{"instances":[${'1,'.repeat(4_500_000)}1]}`, 413],
  ]

  test.each(cases)('%s', async (_, at, headers, body, status) => {
    const [lean, elysia] = await both(at, { method: 'POST', headers: { ...headers, 'x-request-id': 'same' }, body: body as RequestInit['body'] })
    expect(lean.status).toBe(status)
    expect(lean).toEqual(elysia)
  })

  test('a streamed (chunked) body is read as a declared one is, and cut off past the limit', async () => {
    const streamOf = (text: string) => new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text))
        controller.close()
      },
    })
    const send = (body: RequestInit['body']) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': json }, body })
    const declared = await send(JSON.stringify({ features: row }))
    const streamed = await send(streamOf(JSON.stringify({ features: row })))
    expect(streamed.status).toBe(200)
    expect(await streamed.json()).toEqual(await declared.json())
    const tooBig = await send(streamOf(`{"instances":[${'1,'.repeat(4_500_000)}1]}`))
    expect(tooBig.status).toBe(413)
    expect(tooBig.headers.get('content-type')).toContain('application/problem+json')
  })

  test('lean predictions are counted and logged like any other', async () => {
    const count = () => counted('POST', '/v1/models/:name/predict', 422)
    const before = await count()
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': json, 'x-request-id': 'predict-counted' }, body: '{"nope":1}' })
    expect(response.status).toBe(422)
    expect(await count()).toBe(before + 1)
    const line = await eventually(() => server.output().split('\n').find((l) => l.includes('"requestId":"predict-counted"')), { what: 'the access line is written' })
    expect(JSON.parse(line)).toMatchObject({ method: 'POST', route: '/v1/models/:name/predict', status: 422, msg: 'request' })
  })
})

describe('the lean lane and the rate limit', () => {
  test('draws from the same buckets: the burst, then 429 with Retry-After, as problem+json', async () => {
    await using t = await testApp()
    await using server = await startServer({ DATABASE_URL: t.config.databaseUrl, MODELS_DIR: t.config.modelsDir, RATE_LIMIT: '1/3' })
    const key = await t.key('dana')
    const task = (await (await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'limited' } })).json()) as { id: number }
    const statuses: number[] = []
    let refused: Response | undefined
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${server.url}/v1/tasks/${task.id}`, { headers: { 'x-api-key': key } })
      statuses.push(response.status)
      if (response.status === 429) refused = response
      else await response.text()
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200])
    expect(statuses.at(-1)).toBe(429)
    expect(refused!.headers.get('content-type')).toBe('application/problem+json')
    expect(refused!.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(refused!.headers.get('x-content-type-options')).toBe('nosniff')
  })
})

describe('requests the lane leaves to Elysia', () => {
  test('with CORS_ORIGINS and an Origin, the CORS headers come as before', async () => {
    await using t = await testApp()
    await using server = await startServer({ DATABASE_URL: t.config.databaseUrl, MODELS_DIR: t.config.modelsDir, CORS_ORIGINS: 'https://app.example' })
    const key = await t.key('erin')
    const task = (await (await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'cors' } })).json()) as { id: number }
    const response = await fetch(`${server.url}/v1/tasks/${task.id}`, { headers: { 'x-api-key': key, origin: 'https://app.example' } })
    expect(response.status).toBe(200)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(response.headers.get('access-control-expose-headers')).toContain('etag')
  })
})
