import { describe, expect, test } from 'bun:test'
import { testApp } from './helpers'

type Operation = {
  requestBody?: { content: Record<string, unknown> }
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>
  security?: Array<Record<string, string[]>>
}
type Document = { openapi: string; servers?: Array<{ url: string }>; paths: Record<string, Record<string, Operation>>; components: Record<string, unknown> }

async function documentOf(t: { request(path: string): Promise<Response> }): Promise<Document> {
  return (await (await t.request('/openapi.json')).json()) as Document
}

const operationsOf = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))

// The documented routes the public contract names as public (/openapi.json, /docs and /redoc are not in the document).
const publicOperations = ['get /healthz', 'get /readyz', 'get /metrics', 'get /dashboard', 'get /dashboard/assets/{file}', 'get /v2/health/live', 'get /v2/health/ready']

describe('OpenAPI document', () => {
  test('is OpenAPI 3.1 and documents every HTTP route with its statuses', async () => {
    await using t = await testApp()
    const doc = (await (await t.request('/openapi.json')).json()) as { openapi: string; paths: Record<string, Record<string, Operation>> }
    expect(doc.openapi).toStartWith('3.1')
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort()
    const hidden = new Set(['/openapi.json', '/docs', '/redoc', '/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/assets/init.js', '/redoc/assets/redoc.standalone.js'])
    const routes = t.app.routes
      .filter((r) => !hidden.has(r.path) && r.method !== 'WS')
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`)
      .sort()
    expect(documented).toEqual(routes)

    const tasks = doc.paths['/v1/tasks']!
    expect(Object.keys(tasks.post!.responses).sort()).toEqual(['201', '400', '401', '403', '413', '415', '422', '429', '500'])
    expect(tasks.post!.requestBody?.content['application/json']).toBeDefined()
    const item = doc.paths['/v1/tasks/{id}']!
    expect(Object.keys(item.patch!.responses)).toContain('412')
    expect(Object.keys(item.get!.responses)).toContain('304')
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0)
        for (const [status, response] of Object.entries(op.responses)) {
          // Problem details everywhere but /v2, which answers in the Open Inference Protocol's { "error" }.
          if (Number(status) >= 400) expect(JSON.stringify(response)).toContain(/^\/v2(\/|$)/.test(path) ? '"error"' : '"detail"')
        }
      }
    }
  })
})

describe('OpenAPI document validity', () => {
  test('a response without a body (101, 204, 304) has no content; every other one maps media types to schemas', async () => {
    await using t = await testApp()
    const doc = await documentOf(t)
    const bodiless: string[] = []
    for (const { path, method, op } of operationsOf(doc)) {
      for (const [status, response] of Object.entries(op.responses)) {
        const where = `${method} ${path} ${status}`
        if (['101', '204', '304'].includes(status)) {
          bodiless.push(where)
          expect(response, where).not.toHaveProperty('content')
          continue
        }
        expect(Object.keys(response.content ?? {}).length, where).toBeGreaterThan(0)
        for (const [mediaType, media] of Object.entries(response.content ?? {})) {
          expect(mediaType, where).toMatch(/^[\w.+-]+\/[\w.+-]+$/)
          expect(media, where).toHaveProperty('schema')
        }
      }
    }
    expect(bodiless).toEqual(expect.arrayContaining(['get /v1/tasks/{id} 304', 'delete /v1/tasks/{id} 204', 'delete /v1/models/{name} 204', 'get /v1/sensors/ws 101']))
  })

  test('errors are application/problem+json, /v2\'s own shape application/json, pages and assets their own types', async () => {
    await using t = await testApp()
    const doc = await documentOf(t)
    for (const { path, method, op } of operationsOf(doc)) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue
        expect(Object.keys(response.content ?? {}), `${method} ${path} ${status}`).toEqual([/^\/v2(\/|$)/.test(path) ? 'application/json' : 'application/problem+json'])
      }
    }
    expect(Object.keys(doc.paths['/dashboard']!.get!.responses['200']!.content!)).toEqual(['text/html'])
    expect(Object.keys(doc.paths['/dashboard/assets/{file}']!.get!.responses['200']!.content!)).toEqual(['text/javascript', 'text/css'])
    expect(Object.keys(doc.paths['/metrics']!.get!.responses['200']!.content!)).toEqual(['text/plain'])
  })

  test('schemas use JSON Schema keywords only: the validation messages stay out of the document, and in force', async () => {
    await using t = await testApp()
    const text = await (await t.request('/openapi.json')).text()
    // TypeBox's `error` option (a string); a property named error is an object.
    expect(text).not.toMatch(/"error":"/)
    expect(text).toContain('"error":{')
    // Building the document did not take the messages from the schemas validation reads.
    const response = await t.request('/v1/tasks', { method: 'POST', key: await t.key(), json: { title: 'x', due_date: 'soon' } })
    expect(response.status).toBe(422)
    expect(((await response.json()) as { detail: string }).detail).toContain('must be a calendar date YYYY-MM-DD')
  })

  test('public operations need no security; every other names both credentials, and answers 401 without one', async () => {
    await using t = await testApp()
    const doc = await documentOf(t)
    const sample: Record<string, string> = { id: '1', name: 'seed-linear', sensor_id: 't1', file: 'dashboard.js' }
    const both = [{ apiKey: [] }, { bearer: [] }]
    const open: string[] = []
    for (const { path, method, op } of operationsOf(doc)) {
      const where = `${method} ${path}`
      expect(op.security, where).toBeDefined()
      if (op.security!.length === 0) open.push(where)
      else expect(op.security, where).toEqual(expect.arrayContaining(both))
      // A socket may also open with a ticket in its query instead: `{}` there is "no header needed".
      if (op.security!.some((requirement) => Object.keys(requirement).length === 0) && op.security!.length > 0) continue
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => sample[name]!)
      const hasBody = ['post', 'put', 'patch'].includes(method)
      const response = await t.request(url, { method: method.toUpperCase(), ...(hasBody ? { json: {} } : {}) })
      if (op.security!.length === 0) expect(response.status, where).not.toBe(401)
      else expect(response.status, where).toBe(401)
      // What was sent is what the document says is sent for that status.
      const mediaType = response.headers.get('content-type')?.split(';')[0]
      expect(Object.keys(op.responses[String(response.status)]?.content ?? {}), `${where} ${response.status}`).toContain(mediaType!)
    }
    expect(open.sort()).toEqual([...publicOperations].sort())
  })

  test('every rate-limited operation documents the gateway\'s 429 in its own error shape, and a real 429 matches it', async () => {
    await using t = await testApp({ RATE_LIMIT: '1/1' })
    const doc = await documentOf(t)
    // Every /v1 and /v2 route, the /v2 health probes among them.
    const limited = operationsOf(doc).filter(({ path }) => /^\/v[12](\/|$)/.test(path))
    expect(limited.length).toBeGreaterThan(10)
    for (const { path, method, op } of limited) {
      const response = op.responses['429'] as { headers?: Record<string, unknown>; content?: Record<string, unknown> } | undefined
      expect(response, `${method} ${path}`).toBeDefined()
      expect(Object.keys(response!.headers ?? {}).sort(), `${method} ${path}`).toEqual(['RateLimit', 'RateLimit-Policy', 'Retry-After'])
      expect(Object.keys(response!.content ?? {}), `${method} ${path}`).toEqual([path.startsWith('/v2') ? 'application/json' : 'application/problem+json'])
    }
    for (const { path, method, op } of operationsOf(doc).filter(({ path }) => !limited.some((l) => l.path === path))) {
      expect(op.responses['429'], `${method} ${path}`).toBeUndefined()
    }
    const key = await t.key()
    for (const path of ['/v1/tasks', '/v2', '/v2/health/live']) {
      let response = await t.request(path, { key })
      while (response.status !== 429) response = await t.request(path, { key })
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/)
      const documented = doc.paths[path]!.get!.responses['429']!.content!
      expect(Object.keys(documented)).toContain(response.headers.get('content-type')!.split(';')[0]!)
    }
  })

  test('names a server relative to wherever it is served', async () => {
    await using t = await testApp()
    expect((await documentOf(t)).servers).toEqual([{ url: '/' }])
  })
})

describe('documentation pages', () => {
  test('Swagger UI keeps a pasted key in the page only, not in localStorage', async () => {
    await using t = await testApp()
    const init = await (await t.request('/docs/assets/init.js')).text()
    expect(init).toContain('persistAuthorization: false')
  })

  test('/docs and /redoc load every script and style from the service itself', async () => {
    await using t = await testApp()
    for (const page of ['/docs', '/redoc']) {
      const response = await t.request(page)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toStartWith('text/html')
      const html = await response.text()
      const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
      expect(urls.length).toBeGreaterThan(0)
      for (const url of urls) {
        expect(url).toStartWith('/')
        const asset = await t.request(url)
        expect(asset.status).toBe(200)
        expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(0)
      }
      expect(html).not.toMatch(/https?:\/\/(?!localhost)/)
      expect(html).not.toMatch(/<script>|<style>| on\w+=/)
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'")
    }
  })
})

describe('the document generator, loaded on the first request for the document', () => {
  test('leaves the service its own strict date checks', async () => {
    await using t = await testApp()
    const key = await t.key()
    expect((await t.request('/openapi.json')).status).toBe(200)
    const impossible = await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'leap', due_date: '2025-02-29' } })
    expect(impossible.status).toBe(422)
    const real = await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'leap', due_date: '2024-02-29' } })
    expect(real.status).toBe(201)
    const { FormatRegistry } = await import('@sinclair/typebox')
    const { isCalendarDate, isDateTime } = await import('../src/platform/formats')
    expect(FormatRegistry.Get('date')).toBe(isCalendarDate)
    expect(FormatRegistry.Get('date-time')).toBe(isDateTime)
  })
})
