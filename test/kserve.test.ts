// The Open Inference Protocol (KServe v2) REST routes: health, metadata, readiness, infer, and
// errors in the protocol's own `{ "error" }` shape with the usual status codes.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { copyModels, tempDir, testApp, type TestApp } from './helpers'

type Tensor = { name: string; shape: number[]; datatype: string; data: Array<number | string> }
type InferResponse = { model_name: string; model_version: string; id?: string; outputs: Tensor[] }

function infer(t: TestApp, key: string | undefined, name: string, json: unknown): Promise<Response> {
  return t.request(`/v2/models/${name}/infer`, { method: 'POST', key, json })
}

async function errorOf(response: Response, status: number): Promise<string> {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toBe('application/json')
  const body = (await response.json()) as Record<string, unknown>
  expect(Object.keys(body)).toEqual(['error'])
  expect(typeof body.error).toBe('string')
  return body.error as string
}

const seedInput = (data: unknown, shape: unknown[] = [2, 3]) => ({ name: 'input-0', shape, datatype: 'FP64', data })

describe('health', () => {
  test('live and ready answer without a key', async () => {
    await using t = await testApp()
    const live = await t.request('/v2/health/live')
    expect(live.status).toBe(200)
    expect(await live.json()).toEqual({ live: true })
    const ready = await t.request('/v2/health/ready')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ ready: true })
  })
})

describe('model metadata and readiness', () => {
  test('a regressor has one FP64 input [-1, features] and one output predict [-1, 1]', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v2/models/diabetes-mlp', { key })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      name: 'diabetes-mlp',
      versions: ['1'],
      platform: 'taskmesh_wasm',
      inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 10], parameters: { features: ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'] } }],
      outputs: [{ name: 'predict', datatype: 'FP64', shape: [-1, 1] }],
      parameters: { kind: 'mlp' },
    })
  })

  test('a classifier adds predict_proba [-1, classes]; its labels are BYTES', async () => {
    await using t = await testApp()
    const key = await t.key()
    const body = (await (await t.request('/v2/models/iris-logistic', { key })).json()) as { outputs: unknown }
    expect(body.outputs).toEqual([
      { name: 'predict', datatype: 'BYTES', shape: [-1, 1] },
      { name: 'predict_proba', datatype: 'FP64', shape: [-1, 3] },
    ])
  })

  test('a tree ensemble of our own format is platform taskmesh_trees; null in tensor data is a missing value', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const stump = {
      name: 'stump', version: '1', kind: 'trees', features: ['x'], classes: ['no', 'yes'], outputs: 1, comparison: 'le', accumulate: 'f64',
      aggregate: 'sum', base: [0], link: 'sigmoid',
      trees: [{ output: 0, width: 1, feature: [0, -1, -1], threshold: [0, 0, 0], left: [1, -1, -1], right: [2, -1, -1], missing_left: [false, false, false], value: [0, -2, 2] }],
    }
    expect((await t.request('/v1/models/stump', { method: 'PUT', key: admin, json: stump })).status).toBe(201)
    const metadata = (await (await t.request('/v2/models/stump', { key: admin })).json()) as { platform: string; outputs: unknown; parameters: unknown }
    expect(metadata.platform).toBe('taskmesh_trees')
    expect(metadata.parameters).toEqual({ kind: 'trees', trees: 1, nodes: 3, outputs: 1 })
    expect(metadata.outputs).toEqual([{ name: 'predict', datatype: 'BYTES', shape: [-1, 1] }, { name: 'predict_proba', datatype: 'FP64', shape: [-1, 2] }])
    const response = await infer(t, admin, 'stump', { inputs: [{ name: 'x', shape: [3, 1], datatype: 'FP64', data: [-1, null, 1] }], outputs: [{ name: 'predict' }] })
    expect(((await response.json()) as InferResponse).outputs).toEqual([{ name: 'predict', datatype: 'BYTES', shape: [3, 1], data: ['no', 'yes', 'yes'] }])
  })

  test('model ready: 200 when loaded, 503 when its file was rejected, 404 when unknown', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    await Bun.write(join(dir, 'broken.json'), '{"kind": "linear"}')
    await using t = await testApp({ MODELS_DIR: dir })
    const key = await t.key()
    const ready = await t.request('/v2/models/seed-linear/ready', { key })
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ name: 'seed-linear', ready: true })
    expect(await errorOf(await t.request('/v2/models/broken/ready', { key }), 503)).toContain('model "broken" is not ready: name: must be "broken"')
    expect(await errorOf(await t.request('/v2/models/nope/ready', { key }), 404)).toBe('no model named "nope" is loaded')
    expect(await errorOf(await t.request('/v2/models/nope', { key }), 404)).toBe('no model named "nope" is loaded')
  })
})

describe('infer', () => {
  test('flat and nested data give the same outputs; the id is echoed', async () => {
    await using t = await testApp()
    const key = await t.key()
    const flat = await infer(t, key, 'seed-linear', { id: 'req-7', inputs: [seedInput([1, 0, 0, 2, 3, 5])] })
    expect(flat.status).toBe(200)
    const expected: InferResponse = {
      model_name: 'seed-linear',
      model_version: '1',
      id: 'req-7',
      outputs: [{ name: 'predict', datatype: 'FP64', shape: [2, 1], data: [0.7499999999999997, -4.25] }],
    }
    expect(await flat.json()).toEqual(expected)
    const nested = await infer(t, key, 'seed-linear', { id: 'req-7', inputs: [seedInput([[1, 0, 0], [2, 3, 5]])] })
    expect(await nested.json()).toEqual(expected)
    const anonymous = (await (await infer(t, key, 'seed-linear', { inputs: [seedInput([1, 0, 0, 2, 3, 5])] })).json()) as InferResponse
    expect('id' in anonymous).toBe(false)
  })

  test('outputs selects among predict and predict_proba; FP32 inputs are computed in double precision', async () => {
    await using t = await testApp()
    const key = await t.key()
    const input = { name: 'input-0', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2], parameters: { content_type: 'np' } }
    const response = await infer(t, key, 'iris-logistic', { inputs: [input], outputs: [{ name: 'predict_proba' }], parameters: {} })
    expect(response.status).toBe(200)
    const body = (await response.json()) as InferResponse
    expect(body.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['predict_proba', 'FP64', [1, 3]]])
    const probabilities = body.outputs[0]!.data as number[]
    expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12)
    const labels = (await (await infer(t, key, 'iris-logistic', { inputs: [input], outputs: [{ name: 'predict' }] })).json()) as InferResponse
    expect(labels.outputs).toEqual([{ name: 'predict', datatype: 'BYTES', shape: [1, 1], data: ['setosa'] }])
  })

  test('integer class labels come back as INT64, a binary model\'s probabilities as [1 - p, p]', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const model = { name: 'binary', version: '3', kind: 'logistic', features: ['x'], classes: [0, 1], coef: [[1]], intercept: [0] }
    expect((await t.request('/v1/models/binary', { method: 'PUT', key: admin, json: model })).status).toBe(201)
    const body = (await (await infer(t, admin, 'binary', { inputs: [{ name: 'x', shape: [2, 1], datatype: 'FP64', data: [0, 2] }] })).json()) as InferResponse
    const p = 1 / (1 + Math.exp(-2))
    expect(body).toEqual({
      model_name: 'binary',
      model_version: '3',
      outputs: [
        { name: 'predict', datatype: 'INT64', shape: [2, 1], data: [0, 1] },
        { name: 'predict_proba', datatype: 'FP64', shape: [2, 2], data: [0.5, 0.5, expect.closeTo(1 - p, 12), expect.closeTo(p, 12)] },
      ],
    })
  })

  test.each([
    ['no inputs', { inputs: [] }, 'body.inputs: has 0 tensors'],
    ['two inputs', { inputs: [seedInput([1, 0, 0, 2, 3, 5]), seedInput([1, 0, 0, 2, 3, 5])] }, 'body.inputs: has 2 tensors'],
    ['an integer datatype', { inputs: [{ ...seedInput([1, 0, 0, 2, 3, 5]), datatype: 'INT32' }] }, 'body.inputs[0].datatype: must be FP64'],
    ['a shape of the wrong width', { inputs: [seedInput([1, 0, 0, 2, 3, 5], [3, 2])] }, 'body.inputs[0].shape: must be [rows, 3]'],
    ['a one-dimensional shape', { inputs: [seedInput([1, 0, 0], [3])] }, 'body.inputs[0].shape: must be [rows, 3]'],
    ['a fractional row count', { inputs: [seedInput([1, 0, 0], [1.5, 3])] }, 'body.inputs[0].shape: must be [rows, 3]'],
    ['too many rows', { inputs: [seedInput([1, 0, 0], [10_001, 3])] }, 'body.inputs[0].shape: must be [rows, 3] with rows from 1 to 10000'],
    ['too little data', { inputs: [seedInput([1, 0, 0, 2, 3])] }, 'body.inputs[0].data: has 5 values; shape [2, 3] needs 6'],
    ['too few nested rows', { inputs: [seedInput([[1, 0, 0]])] }, 'body.inputs[0].data: has 1 rows; shape [2, 3] needs 2'],
    ['a string value', { inputs: [seedInput([1, 0, 0, 2, '3', 5])] }, 'body.inputs[0].data[4]: must be a number'],
    ['a short nested row', { inputs: [seedInput([[1, 0, 0], [2, 3]])] }, 'body.inputs[0].data[1]: has 2 values, expected 3'],
    ['mixed flat and nested', { inputs: [seedInput([[1, 0, 0], 2])] }, 'body.inputs[0].data[1]: must be an array of 3 numbers'],
    ['an unknown output', { inputs: [seedInput([1, 0, 0, 2, 3, 5])], outputs: [{ name: 'predict_proba' }] }, 'body.outputs[0].name: must be one of predict'],
    ['no inputs field', { id: 'x' }, 'body.inputs'],
  ])('refuses %s with 422 { error }', async (_, json, message) => {
    await using t = await testApp()
    const key = await t.key()
    expect(await errorOf(await infer(t, key, 'seed-linear', json), 422)).toContain(message)
  })

  test('refuses 1e400 (Infinity once parsed) naming the value', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v2/models/seed-linear/infer', {
      method: 'POST', key, headers: { 'content-type': 'application/json' },
      body: '{"inputs":[{"name":"input-0","shape":[2,3],"datatype":"FP64","data":[1,0,0,2,1e400,5]}]}',
    })
    expect(await errorOf(response, 422)).toBe('body.inputs[0].data[4]: must be a finite number')
  })

  test('errors keep their status codes and headers in the { error } shape', async () => {
    await using t = await testApp()
    const key = await t.key()
    const tasksOnly = await t.key(undefined, ['tasks:read'])
    const body = { inputs: [seedInput([1, 0, 0, 2, 3, 5])] }
    const anonymous = await infer(t, undefined, 'seed-linear', body)
    expect(await errorOf(anonymous, 401)).toContain('API key is required')
    expect(anonymous.headers.get('www-authenticate')).toStartWith('Bearer')
    expect(await errorOf(await infer(t, tasksOnly, 'seed-linear', body), 403)).toContain('lacks the scope predict')
    expect(await errorOf(await t.request('/v2/models/seed-linear', { key: tasksOnly }), 403)).toContain('predict')
    expect(await errorOf(await infer(t, key, 'nope', body), 404)).toBe('no model named "nope" is loaded')
    const malformed = await t.request('/v2/models/seed-linear/infer', { method: 'POST', key, headers: { 'content-type': 'application/json' }, body: '{"inputs": [' })
    expect(await errorOf(malformed, 400)).toContain('not valid JSON')
    const text = await t.request('/v2/models/seed-linear/infer', { method: 'POST', key, headers: { 'content-type': 'text/plain' }, body: 'hi' })
    expect(await errorOf(text, 415)).toContain('must be JSON')
    const wrongMethod = await t.request('/v2/models/seed-linear/infer', { key })
    expect(await errorOf(wrongMethod, 405)).toContain('GET is not allowed')
    expect(wrongMethod.headers.get('allow')).toBe('POST')
    expect(wrongMethod.headers.get('x-request-id')).toBeTruthy()
  })
})

describe('GET /v2', () => {
  test('server metadata needs predict, like the model routes, and names the server', async () => {
    await using t = await testApp()
    const anonymous = await t.request('/v2')
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toBeTruthy()
    expect(await anonymous.json()).toEqual({ error: expect.any(String) })
    expect((await t.request('/v2', { key: await t.key(undefined, ['tasks:read']) })).status).toBe(403)
    const response = await t.request('/v2', { key: await t.key(undefined, ['predict']) })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ name: 'taskmesh', version: expect.any(String), extensions: [] })
    const wrong = await t.request('/v2', { method: 'POST' })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('content-type')).toBe('application/json')
    expect(await wrong.json()).toEqual({ error: expect.any(String) })
  })
})
