import { describe, expect, test } from 'bun:test'
import { testApp } from './helpers'

type Operation = { requestBody?: { content: Record<string, unknown> }; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }

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
    expect(Object.keys(tasks.post!.responses).sort()).toEqual(['201', '400', '401', '403', '413', '415', '422', '500'])
    expect(tasks.post!.requestBody?.content['application/json']).toBeDefined()
    const item = doc.paths['/v1/tasks/{id}']!
    expect(Object.keys(item.patch!.responses)).toContain('412')
    expect(Object.keys(item.get!.responses)).toContain('304')
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0)
        for (const [status, response] of Object.entries(op.responses)) {
          // Problem details everywhere but /v2, which answers in the Open Inference Protocol's { "error" }.
          if (Number(status) >= 400) expect(JSON.stringify(response)).toContain(path.startsWith('/v2/') ? '"error"' : '"detail"')
        }
      }
    }
  })
})

describe('documentation pages', () => {
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
