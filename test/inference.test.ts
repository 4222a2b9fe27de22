// /v1/models and /v1/predict over HTTP: scikit-learn's reference outputs in every request form,
// the 422s that name the bad value, scopes, metrics and readiness.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { ModelRegistry } from '../src/inference/registry'
import { Lifecycle } from '../src/platform/lifecycle'
import { createLogger } from '../src/platform/logger'
import { fixtureModels, problemOf, testApp, type TestApp } from './helpers'

interface Fixture {
  model: { name: string; kind: string; features: string[]; classes?: string[]; layers?: Array<{ activation: string }> }
  expected: { inputs: number[][]; predictions?: number[]; probabilities?: number[][]; labels?: string[] }
}

type Classification = { label: string | number; probabilities: Record<string, number> }
type Predictions = { model: string; version: string; predictions: Array<number | Classification> }

const NAMES = ['seed-linear', 'diabetes-linear', 'diabetes-mlp', 'iris-logistic']

async function fixture(name: string): Promise<Fixture> {
  return {
    model: await Bun.file(join(fixtureModels, `${name}.json`)).json(),
    expected: await Bun.file(join(fixtureModels, `${name}.expected.json`)).json(),
  }
}

/** Only sigmoid/softmax/tanh go through exp or tanh, where two libms may differ in the last bits. */
function tolerance(model: Fixture['model']): number {
  const transcendental = model.kind === 'logistic' || (model.layers ?? []).some((l) => !['identity', 'relu'].includes(l.activation))
  return transcendental ? 1e-6 : 1e-9
}

/** Indices where actual differs from expected by more than rel × |expected| (or is not a number). */
function mismatches(actual: unknown[], expected: number[], rel: number): number[] {
  expect(actual.length).toBe(expected.length)
  return expected.flatMap((e, i) => {
    const a = actual[i]
    return typeof a === 'number' && Math.abs(a - e) <= Math.max(rel * Math.abs(e), 1e-300) ? [] : [i]
  })
}

/** Compares v1 predictions with the fixture's expected values, labels and probabilities. */
function expectMatches(fixture: Fixture, predictions: Predictions['predictions']): void {
  const rel = tolerance(fixture.model)
  const { expected, model } = fixture
  if (expected.predictions) {
    expect(mismatches(predictions, expected.predictions, rel)).toEqual([])
    return
  }
  const classes = model.classes!
  const classified = predictions as Classification[]
  expect(classified.map((p) => p.label)).toEqual(expected.labels!)
  expect(mismatches(classified.flatMap((p) => classes.map((c) => p.probabilities[c])), expected.probabilities!.flat(), rel)).toEqual([])
  for (const p of classified) expect(Object.keys(p.probabilities)).toEqual(classes)
}

async function predict(t: TestApp, key: string, name: string, json: unknown): Promise<Response> {
  return t.request(`/v1/models/${name}/predict`, { method: 'POST', key, json })
}

async function predictions(t: TestApp, key: string, name: string, json: unknown): Promise<Predictions> {
  const response = await predict(t, key, name, json)
  const body = await response.text()
  expect(response.status, body).toBe(200)
  return JSON.parse(body) as Predictions
}

describe('scikit-learn reference fixtures through HTTP', () => {
  for (const name of NAMES) {
    test(`${name}: v1 single rows, v1 positional and named batches, and v2 infer (flat and nested) match`, async () => {
      await using t = await testApp()
      const key = await t.key()
      const f = await fixture(name)
      const { inputs } = f.expected
      const named = inputs.map((row) => Object.fromEntries(f.model.features.map((feature, i) => [feature, row[i]!])))

      const single: Predictions['predictions'] = []
      for (const features of named) {
        const body = await predictions(t, key, name, { features })
        expect(body.model).toBe(name)
        expect(body.version).toBe('1')
        expect(body.predictions.length).toBe(1)
        single.push(body.predictions[0]!)
      }
      expectMatches(f, single)
      expectMatches(f, (await predictions(t, key, name, { instances: inputs })).predictions)
      expectMatches(f, (await predictions(t, key, name, { instances: named })).predictions)

      for (const data of [inputs.flat(), inputs]) {
        const response = await t.request(`/v2/models/${name}/infer`, {
          method: 'POST', key, json: { inputs: [{ name: 'input-0', shape: [inputs.length, f.model.features.length], datatype: 'FP64', data }] },
        })
        expect(response.status).toBe(200)
        const result = (await response.json()) as { model_name: string; model_version: string; outputs: Array<{ name: string; shape: number[]; datatype: string; data: Array<number | string> }> }
        expect(result.model_name).toBe(name)
        expect(result.model_version).toBe('1')
        const rel = tolerance(f.model)
        const byName = Object.fromEntries(result.outputs.map((o) => [o.name, o]))
        if (f.expected.predictions) {
          expect(result.outputs.map((o) => o.name)).toEqual(['predict'])
          expect(byName.predict!.shape).toEqual([inputs.length, 1])
          expect(mismatches(byName.predict!.data, f.expected.predictions, rel)).toEqual([])
        } else {
          expect(result.outputs.map((o) => o.name)).toEqual(['predict', 'predict_proba'])
          expect(byName.predict).toMatchObject({ datatype: 'BYTES', shape: [inputs.length, 1], data: f.expected.labels! })
          expect(byName.predict_proba!.shape).toEqual([inputs.length, f.model.classes!.length])
          expect(mismatches(byName.predict_proba!.data, f.expected.probabilities!.flat(), rel)).toEqual([])
        }
      }
    })
  }

  test('POST /v1/predict (the seed call) answers what seed-linear predicts, feature3 defaulting to 0', async () => {
    await using t = await testApp()
    const key = await t.key()
    const f = await fixture('seed-linear')
    for (const [i, [feature1, feature2, feature3]] of f.expected.inputs.entries()) {
      const response = await t.request('/v1/predict', { method: 'POST', key, json: { feature1, feature2, feature3 } })
      expect(response.status).toBe(200)
      const { prediction } = (await response.json()) as { prediction: number }
      expect(mismatches([prediction], [f.expected.predictions![i]!], 1e-9)).toEqual([])
    }
    const implicit = await t.request('/v1/predict', { method: 'POST', key, json: { feature1: 2, feature2: 3 } })
    const explicit = await t.request('/v1/predict', { method: 'POST', key, json: { feature1: 2, feature2: 3, feature3: 0 } })
    expect(await implicit.json()).toEqual(await explicit.json())
  })
})

describe('what a prediction request may hold', () => {
  const seed = { feature1: 1, feature2: 2, feature3: 3 }
  const row = [1, 2, 3]

  test.each([
    ['a missing feature', { features: { feature1: 1, feature2: 2 } }, 'body.features.feature3', 'is missing'],
    ['an unknown feature', { features: { ...seed, feature4: 1 } }, 'body.features.feature4', 'is not a feature of seed-linear'],
    ['a string value', { features: { ...seed, feature2: '2' } }, 'body.features.feature2', 'must be a number'],
    ['a null value', { instances: [row, [1, null, 3]] }, 'body.instances[1][1]', 'is null (a missing value), which this model cannot take'],
    ['a bad value deep in a batch', { instances: [row, row, row, [1, 'x', 3]] }, 'body.instances[3][1]', 'must be a number'],
    ['a short row', { instances: [row, [1, 2]] }, 'body.instances[1]', 'has 2 values, expected 3'],
    ['a long row', { instances: [[1, 2, 3, 4]] }, 'body.instances[0]', 'has 4 values, expected 3'],
    ['a named row missing a feature', { instances: [seed, { feature1: 1, feature3: 3 }] }, 'body.instances[1].feature2', 'is missing'],
    ['a named row with an unknown feature', { instances: [{ ...seed, x: 1 }] }, 'body.instances[0].x', 'is not a feature'],
    ['a row that is neither', { instances: [row, 7] }, 'body.instances[1]', 'must be an array of 3 numbers or an object'],
    ['an empty batch', { instances: [] }, 'body.instances', 'at least one row'],
    ['both features and instances', { features: seed, instances: [row] }, 'body', 'not both'],
    ['neither', {}, 'body', 'give features'],
    ['another field', { features: seed, model: 'x' }, 'body.model', ''],
    ['instances that are not an array', { instances: { a: 1 } }, 'body.instances', ''],
    ['features that are not an object', { features: [1, 2, 3] }, 'body.features', 'Expected object'],
    ['features that are a string', { features: 'feature1=1' }, 'body.features', 'Expected object'],
    ['features that are null', { features: null }, 'body.features', 'Expected object'],
  ])('refuses %s with 422 naming it', async (_, json, field, message) => {
    await using t = await testApp()
    const key = await t.key()
    const response = await predict(t, key, 'seed-linear', json)
    expect(response.status).toBe(422)
    const problem = await problemOf(response)
    expect(problem.errors).toEqual([{ field, message: expect.stringContaining(message) }])
    expect(problem.detail).toContain(field)
  })

  test('refuses numbers JSON parses to Infinity (1e400) in every form', async () => {
    await using t = await testApp()
    const key = await t.key()
    const predict = '/v1/models/seed-linear/predict'
    const bodies: Array<[string, string, string]> = [
      [predict, '{"features":{"feature1":1e400,"feature2":0,"feature3":0}}', 'body.features.feature1'],
      [predict, '{"instances":[[1,2,3],[0,-1e400,0]]}', 'body.instances[1][1]'],
      [predict, '{"instances":[{"feature1":0,"feature2":0,"feature3":1e999}]}', 'body.instances[0].feature3'],
      ['/v1/predict', '{"feature1":1e400,"feature2":0}', 'body.feature1'],
    ]
    for (const [path, body, field] of bodies) {
      const response = await t.request(path, { method: 'POST', key, headers: { 'content-type': 'application/json' }, body })
      expect(response.status).toBe(422)
      expect((await problemOf(response)).errors).toEqual([{ field, message: expect.stringContaining('finite number') }])
    }
  })

  test('accepts 10 000 rows and refuses 10 001 without running any', async () => {
    await using t = await testApp()
    const key = await t.key()
    const rows = Array.from({ length: 10_000 }, (_, i) => Array.from({ length: 10 }, (__, j) => ((i * 31 + j * 17) % 97) / 97 - 0.5))
    const ok = await predictions(t, key, 'diabetes-mlp', { instances: rows })
    expect(ok.predictions.length).toBe(10_000)
    expect(ok.predictions.every((p) => typeof p === 'number' && Number.isFinite(p))).toBe(true)
    const response = await predict(t, key, 'diabetes-mlp', { instances: [...rows, rows[0]] })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors).toEqual([{ field: 'body.instances', message: expect.stringContaining('at most 10000') }])
  })

  test('a prediction that overflows to Infinity is a 422, not a null in the answer', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await predict(t, key, 'seed-linear', { features: { feature1: 1e308, feature2: 1e308, feature3: 0 } })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors).toEqual([{ field: 'body', message: expect.stringContaining('not a finite number') }])
  })

  test('an unknown model is a 404 problem', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await predict(t, key, 'no-such-model', { features: seed })
    expect(response.status).toBe(404)
    expect(await problemOf(response)).toMatchObject({ detail: 'no model named "no-such-model" is loaded' })
  })

  test.each([
    ['a missing feature1', { feature2: 1 }, 'body.feature1'],
    ['a string', { feature1: 1, feature2: 'x' }, 'body.feature2'],
    ['another field', { feature1: 1, feature2: 2, feature4: 3 }, 'body.feature4'],
  ])('POST /v1/predict refuses %s with 422', async (_, json, field) => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/predict', { method: 'POST', key, json })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors?.map((e) => e.field)).toEqual([field])
  })

  test('POST /v1/predict is a 503 while seed-linear is not loaded', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    expect((await t.request('/v1/models/seed-linear', { method: 'DELETE', key: admin })).status).toBe(204)
    const response = await t.request('/v1/predict', { method: 'POST', key: admin, json: { feature1: 1, feature2: 2 } })
    expect(response.status).toBe(503)
    expect(await problemOf(response)).toMatchObject({ detail: 'the model seed-linear is not loaded' })
  })
})

describe('classifiers', () => {
  test('an MLP classifier answers the argmax label with every class probability', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    // Scores = the inputs themselves, so softmax([a, b, c]) is easy to compute here.
    const model = {
      name: 'mlp-classes', version: 'a', kind: 'mlp', features: ['a', 'b', 'c'], classes: ['x', 'y', 'z'],
      layers: [{ weights: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], bias: [0, 0, 0], activation: 'softmax' }],
    }
    expect((await t.request('/v1/models/mlp-classes', { method: 'PUT', key: admin, json: model })).status).toBe(201)
    const body = await predictions(t, admin, 'mlp-classes', { instances: [[0, 1, 2], { a: 3, b: 0, c: 0 }] })
    const softmax = (v: number[]) => v.map((x) => Math.exp(x) / v.reduce((s, y) => s + Math.exp(y), 0))
    const [p0, p1] = [softmax([0, 1, 2]), softmax([3, 0, 0])]
    expect(body.predictions).toEqual([
      { label: 'z', probabilities: { x: expect.closeTo(p0[0]!, 12), y: expect.closeTo(p0[1]!, 12), z: expect.closeTo(p0[2]!, 12) } },
      { label: 'x', probabilities: { x: expect.closeTo(p1[0]!, 12), y: expect.closeTo(p1[1]!, 12), z: expect.closeTo(p1[2]!, 12) } },
    ])
  })

  test('a binary logistic model with numeric labels gives [1 - p, p]', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const model = { name: 'binary', version: '1', kind: 'logistic', features: ['x'], classes: [0, 1], coef: [[2]], intercept: [-1] }
    expect((await t.request('/v1/models/binary', { method: 'PUT', key: admin, json: model })).status).toBe(201)
    const body = await predictions(t, admin, 'binary', { instances: [[0], [1]] })
    const p = (z: number) => 1 / (1 + Math.exp(-z))
    expect(body.predictions).toEqual([
      { label: 0, probabilities: { 0: expect.closeTo(1 - p(-1), 12), 1: expect.closeTo(p(-1), 12) } },
      { label: 1, probabilities: { 0: expect.closeTo(1 - p(1), 12), 1: expect.closeTo(p(1), 12) } },
    ])
  })
})

describe('reading models', () => {
  test('GET /v1/models lists every loaded model with its metadata', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/models', { key })
    expect(response.status).toBe(200)
    const { items, rejected } = (await response.json()) as { items: Array<Record<string, unknown>>; rejected: unknown[] }
    expect(items.map((m) => m.name)).toEqual(['diabetes-linear', 'diabetes-mlp', 'iris-logistic', 'seed-linear'])
    expect(rejected).toEqual([])
    expect(items[2]).toEqual({
      name: 'iris-logistic', version: '1', kind: 'logistic', description: 'Multinomial LogisticRegression on iris',
      features: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'], classes: ['setosa', 'versicolor', 'virginica'],
    })
  })

  test('GET /v1/models/{name} answers one model, 404 for an unknown one', async () => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request('/v1/models/seed-linear', { key })
    expect(await response.json()).toEqual({
      name: 'seed-linear', version: '1', kind: 'linear', description: "The seed's three-feature linear model", features: ['feature1', 'feature2', 'feature3'],
    })
    expect((await t.request('/v1/models/nope', { key })).status).toBe(404)
  })
})

describe('scopes', () => {
  test('reading and predicting need predict; uploading and deleting need admin', async () => {
    await using t = await testApp()
    const predictOnly = await t.key(undefined, ['predict'])
    const tasksOnly = await t.key(undefined, ['tasks:read', 'tasks:write'])
    const admin = await t.key(undefined, ['admin'])
    const file = await Bun.file(join(fixtureModels, 'seed-linear.json')).json()

    for (const [method, path, json] of [
      ['GET', '/v1/models', undefined], ['GET', '/v1/models/seed-linear', undefined],
      ['POST', '/v1/models/seed-linear/predict', { features: { feature1: 1, feature2: 1, feature3: 1 } }],
      ['POST', '/v1/predict', { feature1: 1, feature2: 1 }],
    ] as const) {
      expect((await t.request(path, { method, json })).status).toBe(401)
      expect((await t.request(path, { method, json, key: tasksOnly })).status).toBe(403)
      expect((await t.request(path, { method, json, key: predictOnly })).status).toBe(200)
    }

    const put = await t.request('/v1/models/seed-linear', { method: 'PUT', key: predictOnly, json: { ...file, version: 'x' } })
    expect(put.status).toBe(403)
    expect(put.headers.get('www-authenticate')).toContain('scope="admin"')
    expect((await t.request('/v1/models/seed-linear', { method: 'DELETE', key: predictOnly })).status).toBe(403)
    expect((await t.request('/v1/models/seed-linear', { method: 'DELETE' })).status).toBe(401)
    // Nothing changed.
    expect(((await (await t.request('/v1/models/seed-linear', { key: predictOnly })).json()) as { version: string }).version).toBe('1')
    expect((await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json: { ...file, version: 'x' } })).status).toBe(200)
    expect((await t.request('/v1/models/seed-linear', { method: 'DELETE', key: admin })).status).toBe(204)
  })
})

describe('metrics', () => {
  test('predictions are counted by model, with the batch size in a histogram', async () => {
    await using t = await testApp()
    const key = await t.key()
    await predictions(t, key, 'seed-linear', { features: { feature1: 1, feature2: 1, feature3: 1 } })
    await predictions(t, key, 'seed-linear', { instances: [[1, 2, 3], [4, 5, 6], [7, 8, 9]] })
    await t.request('/v1/predict', { method: 'POST', key, json: { feature1: 1, feature2: 1 } })
    const text = await (await t.request('/metrics')).text()
    expect(text).toContain('predictions_total{model="seed-linear"} 5')
    expect(text).toContain('prediction_batch_rows_count{model="seed-linear"} 3')
    expect(text).toContain('prediction_batch_rows_bucket{le="2",model="seed-linear"} 2')
    expect(text).toContain('models_loaded 4')
  })
})

describe('readiness', () => {
  test('/readyz and /v2/health/ready are 503 until the models are loaded', async () => {
    await using t = await testApp()
    const registry = new ModelRegistry({ dir: t.config.modelsDir, log: createLogger('silent') })
    const app = createApp({ config: t.config, database: t.database, keys: t.keys, log: createLogger('silent'), registry })
    const get = (path: string) => app.handle(new Request(`http://localhost${path}`))

    const before = await get('/readyz')
    expect(before.status).toBe(503)
    expect(await problemOf(before)).toMatchObject({ detail: 'not ready: models', checks: { database: true, accepting: true, models: false } })
    const v2 = await get('/v2/health/ready')
    expect(v2.status).toBe(503)
    expect(await v2.json()).toEqual({ error: 'the models are still loading' })

    await registry.load()
    expect((await get('/readyz')).status).toBe(200)
    expect(await (await get('/v2/health/ready')).json()).toEqual({ ready: true })
    registry.close()
  })

  test('without a registry given, inference loads MODELS_DIR at lifecycle start and closes it at shutdown', async () => {
    await using t = await testApp()
    const log = createLogger('silent')
    const lifecycle = new Lifecycle()
    const app = createApp({ config: t.config, database: t.database, keys: t.keys, log, lifecycle })
    const get = (path: string) => app.handle(new Request(`http://localhost${path}`))
    const key = await t.key()

    expect(await problemOf(await get('/readyz'))).toMatchObject({ detail: 'not ready: models', checks: { models: false } })
    await lifecycle.start()
    expect((await get('/readyz')).status).toBe(200)
    const list = (await (await app.handle(new Request('http://localhost/v1/models', { headers: { 'x-api-key': key } }))).json()) as { items: Array<{ name: string }> }
    expect(list.items.map((m) => m.name)).toEqual(['diabetes-linear', 'diabetes-mlp', 'iris-logistic', 'seed-linear'])

    await lifecycle.shutdown(undefined, { timeoutMs: 1000, log })
    expect(await (await get('/v2/health/ready')).json()).toEqual({ error: 'the models are still loading' })
  })
})
