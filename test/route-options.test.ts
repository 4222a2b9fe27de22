import { describe, expect, test } from 'bun:test'
import { Elysia, t } from 'elysia'
import { http } from '../src/platform/http'
import { Lifecycle } from '../src/platform/lifecycle'
import { createLogger } from '../src/platform/logger'
import { routeOptions } from '../src/platform/route-options'
import { RouteTable } from '../src/platform/routes'
import { inProcess, problemOf, testApp } from './helpers'

/** A bare app with the platform's HTTP plugin and one route declaring a 16-byte body limit. */
function smallBodyApp() {
  const routes = new RouteTable()
  const app = new Elysia()
    .use(http({ bodyLimit: 1024, routes, log: createLogger('silent'), lifecycle: new Lifecycle() }))
    .use(routeOptions)
    .post('/small', ({ body }) => body, { bodyLimit: 16, body: t.Object({ a: t.String() }), parse: 'json' })
    .post('/default', ({ body }) => body, { body: t.Object({ a: t.String() }), parse: 'json' })
  routes.load(app.routes)
  return inProcess(app)
}

describe('route declarations', () => {
  test('a route\'s bodyLimit is in force when the global parse reads its body', async () => {
    const request = smallBodyApp()
    const fits = JSON.stringify({ a: 'x'.repeat(8) })
    const over = JSON.stringify({ a: 'x'.repeat(9) })
    expect(fits.length).toBe(16)
    expect((await request('/small', { method: 'POST', body: fits, headers: { 'content-type': 'application/json' } })).status).toBe(200)
    const refused = await request('/small', { method: 'POST', body: over, headers: { 'content-type': 'application/json' } })
    expect(refused.status).toBe(413)
    expect((await problemOf(refused)).detail).toContain('16 bytes')
    // The same body on a route without a declaration meets the service-wide limit only.
    expect((await request('/default', { method: 'POST', body: over, headers: { 'content-type': 'application/json' } })).status).toBe(200)
  })

  test('a route\'s rateGroup is applied before its body is read', async () => {
    await using app = await testApp({ RATE_LIMIT: '1/1' })
    const key = await app.key()
    const broken = { method: 'POST', key, body: '{"title": ', headers: { 'content-type': 'application/json' } }
    expect((await app.request('/v1/tasks', broken)).status).toBe(400)
    // Over the limit the malformed body is never parsed: 429, not 400.
    const limited = await app.request('/v1/tasks', broken)
    expect(limited.status).toBe(429)
    expect((await problemOf(limited)).detail).toContain('rate limit')
  })

  test('the route table finds a request\'s rate group from the declarations alone', () => {
    const routes = new RouteTable()
    routes.load([
      { method: 'GET', path: '/things', hooks: { rateGroup: 'tasks' } },
      { method: 'GET', path: '/things/:id', hooks: { rateGroup: 'tasks' } },
      { method: 'POST', path: '/things/:id/parts/:part', hooks: { rateGroup: 'tasks' } },
      { method: 'GET', path: '/feeds/:id', hooks: { rateGroup: 'sensors' } },
      { method: 'GET', path: '/open' },
    ])
    expect(['/things', '/things/7', '/things/7/parts/2', '/feeds/a', '/open', '/elsewhere'].map((path) => routes.rateGroupOf(path)))
      .toEqual(['tasks', 'tasks', 'tasks', 'sensors', undefined, undefined])
  })

  test('routes that share a path prefix but not a rate group are refused at start', () => {
    expect(() => new RouteTable().load([
      { method: 'GET', path: '/things/:id', hooks: { rateGroup: 'tasks' } },
      { method: 'GET', path: '/things/:id/feed', hooks: { rateGroup: 'sensors' } },
    ])).toThrow('routes under /things/ declare the rate groups tasks and sensors')
  })
})
