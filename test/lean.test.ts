// The lean lane (src/platform/lean.ts) answers GET /v1/tasks/{id} over HTTP past Elysia's lifecycle.
// Whatever it answers must be what Elysia answers for the same request: here the real server (lean
// lane) and the same app in process (Elysia's pipeline) serve one database, and every case is asked
// of both and compared — status, body, and every header but the date and a fresh request id.
import { afterAll, describe, expect, test } from 'bun:test'
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

describe('the lean lane answers as Elysia does', async () => {
  const t = await testApp({ RATE_LIMIT: '1000/1000' })
  const server = await startServer({ DATABASE_URL: t.config.databaseUrl, MODELS_DIR: t.config.modelsDir, RATE_LIMIT: '1000/1000' })
  afterAll(async () => {
    await server[Symbol.asyncDispose]()
    await t[Symbol.asyncDispose]()
  })
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
    const [lean, elysia] = await Promise.all([
      fetch(`${server.url}${path}`, { headers }).then((r) => shape(r, keep)),
      t.app.handle(new Request(`http://localhost${path}`, { headers })).then((r) => shape(r, keep)),
    ])
    // The rate limit's remaining count differs (two processes, two buckets); its presence and policy do not.
    for (const s of [lean, elysia]) s.headers.ratelimit = String(s.headers.ratelimit ?? '').replace(/r=\d+/, 'r=N')
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
    const count = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text()
      return Number(/^http_requests_total\{method="GET",route="\/v1\/tasks\/:id",status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0)
    }
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
