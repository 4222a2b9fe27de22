// Property-based fuzzing driven by the service's own /openapi.json: for every
// operation, valid and deliberately invalid params, queries and bodies. The
// service must never answer 5xx, every error must be problem+json (the /v2
// protocol's own `{ error }` shape there), and every 2xx body must match the
// schema the document declares for it.
import { describe, expect, test } from 'bun:test'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import fc from 'fast-check'
import { testApp } from './helpers'

type Schema = {
  type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean | Schema
  items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]; enum?: unknown[]; const?: unknown; minLength?: number; maxLength?: number
  pattern?: string; format?: string; minimum?: number; maximum?: number; minItems?: number; maxItems?: number
  patternProperties?: Record<string, Schema>
}
type Parameter = { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema: Schema }
type Operation = {
  parameters?: Parameter[]
  requestBody?: { content: Record<string, { schema: Schema }> }
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>
}

const RUNS = Number(process.env.FUZZ_RUNS ?? 150)
const SEED = Number(process.env.FUZZ_SEED ?? 20261128)

/** Values a schema accepts (as far as a generator can know without solving patterns). */
function valid(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const)
  if (schema.enum) return fc.constantFrom(...schema.enum)
  const union = schema.anyOf ?? schema.oneOf
  if (union) return fc.oneof(...union.map((s) => valid({ ...s, ...pickBounds(schema) }, depth)))
  const type = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : []
  if (type.length > 1) return fc.oneof(...type.map((t) => valid({ ...schema, type: t }, depth)))
  switch (type[0]) {
    case 'string':
      if (schema.format === 'date') return fc.date({ min: new Date('2000-01-01'), max: new Date('2099-12-31'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10))
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString())
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length >= (schema.minLength ?? 0) && s.length <= (schema.maxLength ?? 200))
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 300) })
    case 'integer': return fc.integer({ min: schema.minimum ?? -1000, max: Math.min(schema.maximum ?? 1000, 1_000_000) })
    case 'number': return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true })
    case 'boolean': return fc.boolean()
    case 'null': return fc.constant(null)
    case 'array': return depth > 3 ? fc.constant([]) : fc.array(valid(schema.items ?? {}, depth + 1), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 5, 5) })
    case 'object': {
      if (depth > 3) return fc.constant({})
      const props = schema.properties ?? {}
      const required = new Set(schema.required ?? [])
      const record: Record<string, fc.Arbitrary<unknown>> = {}
      for (const [name, s] of Object.entries(props)) record[name] = valid(s, depth + 1)
      return fc.record(record, { requiredKeys: Object.keys(props).filter((k) => required.has(k)) })
    }
    default: return fc.jsonValue({ maxDepth: 2 })
  }
}

function pickBounds(schema: Schema): Schema {
  const { minimum, maximum, minLength, maxLength } = schema
  return Object.fromEntries(Object.entries({ minimum, maximum, minLength, maxLength }).filter(([, v]) => v !== undefined))
}

/** Valid values, mutations of them, and arbitrary junk. */
function fuzzed(schema: Schema): fc.Arbitrary<unknown> {
  const junk = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 300 }), fc.constantFrom('', ' ', '%', "'; DROP TABLE tasks;--", '\u0000', '🦀', '1e309', '-1', 'null', '[]', '{}'))
  const base = valid(schema)
  const mutated = base.chain((value) => {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value)
      return fc.oneof(
        fc.record({ extra: fc.jsonValue() }).map((extra) => ({ ...value, [`x${Object.keys(extra).length}`]: extra.extra })),
        keys.length ? fc.constantFrom(...keys).chain((k) => junk.map((j) => ({ ...value, [k]: j }))) : fc.constant(value),
        keys.length ? fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(value).filter(([key]) => key !== k))) : fc.constant(value),
      )
    }
    return junk
  })
  return fc.oneof({ weight: 3, arbitrary: base }, { weight: 2, arbitrary: mutated }, { weight: 1, arbitrary: junk })
}

const toParam = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value) ?? '')

describe('fuzzing every operation of /openapi.json', async () => {
  const t = await testApp({ RATE_LIMIT: 'off' })
  const key = await t.key('fuzzer', ['admin'])
  for (let i = 0; i < 5; i++) await t.request('/v1/tasks', { method: 'POST', key, json: { title: `seed ${i}` } })
  const doc = (await (await t.request('/openapi.json')).json()) as { paths: Record<string, Record<string, Operation>> }
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats(ajv)

  const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))

  test.each(operations.map((o) => [`${o.method.toUpperCase()} ${o.path}`, o] as const))('%s', async (_, { path, method, op }) => {
    const params = op.parameters ?? []
    const body = op.requestBody?.content['application/json']?.schema
    const request = fc.record({
      // An empty or dot segment would address another route (/v1/tasks/ is the list).
      path: fc.record(Object.fromEntries(params.filter((p) => p.in === 'path')
        .map((p) => [p.name, fc.oneof(fc.integer({ min: 1, max: 8 }), fuzzed(p.schema)).filter((v) => !['', '.', '..'].includes(toParam(v)))]))),
      query: fc.record(Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, fuzzed(p.schema)])), { requiredKeys: [] }),
      headers: fc.record(Object.fromEntries(params.filter((p) => p.in === 'header').map((p) => [p.name, fuzzed(p.schema)])), { requiredKeys: [] }),
      body: body ? fuzzed(body) : fc.constant(undefined),
      rawBody: fc.option(fc.constantFrom('{"title":', '\xff\xfe', 'null', '[1,2', ''), { freq: 8 }),
    })
    await fc.assert(fc.asyncProperty(request, async (r) => {
      let url = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(toParam(r.path[name])))
      const query = new URLSearchParams(Object.entries(r.query).map(([k, v]) => [k, toParam(v)] as [string, string]))
      if ([...query].length) url += `?${query}`
      const headers: Record<string, string> = { 'x-api-key': key }
      for (const [name, value] of Object.entries(r.headers)) headers[name] = toParam(value).replace(/[^\x20-\x7e]/g, '')
      const init: RequestInit = { method: method.toUpperCase(), headers }
      if (body && method !== 'get' && method !== 'head') {
        headers['content-type'] = 'application/json'
        init.body = r.rawBody ?? JSON.stringify(r.body ?? null)
      }
      const response = await t.app.handle(new Request(`http://localhost${url}`, init))
      const text = await response.text()
      const context = `${method.toUpperCase()} ${url} ${String(init.body ?? '').slice(0, 200)} → ${response.status} ${text.slice(0, 300)}`
      expect(response.status, context).toBeLessThan(500)
      if (response.status >= 400) {
        const v2 = path.startsWith('/v2/')
        expect(response.headers.get('content-type'), context).toBe(v2 ? 'application/json' : 'application/problem+json')
        const problem = JSON.parse(text) as Record<string, unknown>
        if (v2) expect(typeof problem.error, context).toBe('string')
        else expect(problem, context).toMatchObject({ type: expect.any(String), title: expect.any(String), status: response.status, detail: expect.any(String) })
      } else if (response.status >= 200 && response.status < 300 && text !== '') {
        const declared = op.responses[String(response.status)]
        expect(declared, context).toBeDefined()
        const schema = declared?.content?.['application/json']?.schema
        if (schema && response.headers.get('content-type')?.startsWith('application/json')) {
          const check = ajv.compile(schema)
          expect(check(JSON.parse(text)), `${context}\n${ajv.errorsText(check.errors)}`).toBe(true)
        }
      }
    }), { seed: SEED, numRuns: RUNS })
  }, 120_000)
})

/** Everything an error response must be: the route's error shape, and nothing of the server's internals. */
function expectCleanError(path: string, response: Response, text: string, context: string) {
  expect(response.status, context).toBeLessThan(500)
  expect(text, context).not.toMatch(/\bat .*[\\/]|node_modules|\/work\/|src\/|\.ts:\d|<html|<!doctype/i)
  if (response.status < 400) return
  const v2 = path.startsWith('/v2/')
  expect(response.headers.get('content-type'), context).toBe(v2 ? 'application/json' : 'application/problem+json')
  const body = JSON.parse(text) as Record<string, unknown>
  if (v2) expect(typeof body.error, context).toBe('string')
  else expect(body, context).toMatchObject({ status: response.status, detail: expect.any(String) })
}

describe('hostile inputs on every operation', async () => {
  const t = await testApp({ RATE_LIMIT: 'off' })
  const key = await t.key('hostile', ['admin'])
  const { id: kept } = (await (await t.request('/v1/tasks', { method: 'POST', key, json: { title: 'kept' } })).json()) as { id: number }
  const doc = (await (await t.request('/openapi.json')).json()) as { paths: Record<string, Record<string, Operation>> }
  const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))
  const send = async (method: string, url: string, body?: string) => {
    const headers: Record<string, string> = { 'x-api-key': key }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await t.app.handle(new Request(`http://localhost${url}`, { method, headers, body }))
    return { response, text: await response.text() }
  }

  const jsonRoutes = operations.filter((o) => o.op.requestBody?.content['application/json'])
  test.each(jsonRoutes.map((o) => [`${o.method.toUpperCase()} ${o.path}`, o] as const))('%s: a body nested 10 000 deep is a 400', async (_, { path, method }) => {
    const url = path.replace(/\{\w+\}/g, '1')
    for (const body of [`{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, '{"a":'.repeat(65) + '1' + '}'.repeat(65)]) {
      const { response, text } = await send(method.toUpperCase(), url, body)
      expectCleanError(path, response, text, `${method} ${url} → ${response.status} ${text.slice(0, 300)}`)
      // A smaller body limit may refuse it first.
      expect([400, 413], text).toContain(response.status)
    }
  })

  const prototypeNames = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__lookupSetter__', 'prototype']
  const withParams = operations.filter((o) => o.path.includes('{'))
  test.each(withParams.map((o) => [`${o.method.toUpperCase()} ${o.path}`, o] as const))('%s: Object.prototype names as path parameters', async (_, { path, method, op }) => {
    for (const name of prototypeNames) {
      const url = path.replace(/\{\w+\}/g, encodeURIComponent(name))
      const { response, text } = await send(method.toUpperCase(), url, op.requestBody ? '{}' : undefined)
      expectCleanError(path, response, text, `${method} ${url} → ${response.status} ${text.slice(0, 300)}`)
    }
  })

  test.each(['/dashboard/assets/__proto__', '/dashboard/assets/constructor', '/dashboard/assets/toString', '/v1/models/constructor', '/v1/models/__proto__', '/v1/sensors/toString/readings', '/v1/sensors/__proto__/readings', '/v2/models/constructor', '/v2/models/__proto__/ready'])('GET %s', async (url) => {
    const { response, text } = await send('GET', url)
    expectCleanError(url, response, text, `GET ${url} → ${response.status} ${text.slice(0, 300)}`)
  })

  test.each(jsonRoutes.map((o) => [`${o.method.toUpperCase()} ${o.path}`, o] as const))('%s: Object.prototype names as body keys', async (_, { path, method }) => {
    const url = path.replace(/\{\w+\}/g, '1')
    for (const name of prototypeNames) {
      const { response, text } = await send(method.toUpperCase(), url, `{"${name}":{"${name}":1},"title":"${name}","model":"${name}","inputs":[{"name":"${name}"}]}`)
      expectCleanError(path, response, text, `${method} ${url} → ${response.status} ${text.slice(0, 300)}`)
    }
  })

  test.each(['0x1', '1e0', '+1', '1.0', '01', ' 1', '1 ', '0b1', '1n', '１'])('a task id %p is 422 on GET, PATCH and DELETE', async (alias) => {
    for (const method of ['GET', 'PATCH', 'DELETE']) {
      const url = `/v1/tasks/${encodeURIComponent(alias.replace('1', String(kept)))}`
      const { response, text } = await send(method, url, method === 'PATCH' ? '{"title":"renamed"}' : undefined)
      expect(response.status, `${method} ${url} → ${text}`).toBe(422)
      expectCleanError(url, response, text, `${method} ${url}`)
    }
    expect((await t.request(`/v1/tasks/${kept}`, { key })).status).toBe(200)
  })
})
