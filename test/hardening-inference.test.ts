// Inference under hostile but valid input: names and labels that are Object.prototype members,
// the bounds on classes, models, answer size and kernel memory (each a 413 or 422 naming its
// limit), and rejected files whose reasons show no server path.
import { describe, expect, test } from 'bun:test'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createApp } from '../src/app'
import { MAX_CLASSES } from '../src/inference/model-file'
import { MAX_MODELS, MAX_OUTPUT_VALUES } from '../src/inference/model'
import { ModelRegistry } from '../src/inference/registry'
import { createLogger } from '../src/platform/logger'
import { eventually } from './eventually'
import { problemOf, tempDir, testApp, type TestApp } from './helpers'

const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']

/** A logistic model over one feature `x` with these labels (scores 0, x, 2x, …). */
const classifier = (name: string, classes: Array<string | number>) => ({
  name, version: '1', kind: 'logistic', features: ['x'], classes, coef: classes.map((_, i) => [i]), intercept: classes.map(() => 0),
})

/** One feature through a relu layer `width` wide, summed: weights of about 24 × width bytes in the kernel. */
const wide = (name: string, width: number) => ({
  name, version: '1', kind: 'mlp', features: ['x'],
  layers: [
    { weights: [Array<number>(width).fill(1)], bias: Array<number>(width).fill(0), activation: 'relu' },
    { weights: Array.from({ length: width }, () => [1]), bias: [0], activation: 'identity' },
  ],
})

const put = (t: TestApp, key: string, model: { name: string; [field: string]: unknown }) => t.request(`/v1/models/${model.name}`, { method: 'PUT', key, json: model })

describe('names and labels that are Object.prototype members', () => {
  test('a class label such as __proto__ keeps its probability', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const classes = ['__proto__', 'constructor', 'toString']
    expect((await put(t, admin, classifier('prototype-labels', classes))).status).toBe(201)
    const response = await t.request('/v1/models/prototype-labels/predict', { method: 'POST', key: admin, json: { instances: [[0], [1]] } })
    expect(response.status).toBe(200)
    const { predictions } = (await response.json()) as { predictions: Array<{ label: string; probabilities: Record<string, number> }> }
    for (const prediction of predictions) {
      expect(Object.keys(prediction.probabilities)).toEqual(classes)
      expect(Object.values(prediction.probabilities).reduce((a, b) => a + b)).toBeCloseTo(1, 12)
    }
    expect(predictions[0]!.probabilities.__proto__).toBeCloseTo(1 / 3, 12)
  })

  test('model names such as constructor are unknown models (404) until one is uploaded under that name', async () => {
    await using t = await testApp()
    const key = await t.key(undefined, ['predict', 'admin'])
    for (const name of PROTOTYPE_NAMES) {
      const row = { features: { x: 1 } }
      const tensor = { inputs: [{ name: 'input-0', shape: [1, 1], datatype: 'FP64', data: [1] }] }
      for (const [method, path, json] of [
        ['GET', `/v1/models/${name}`, undefined], ['POST', `/v1/models/${name}/predict`, row], ['DELETE', `/v1/models/${name}`, undefined],
        ['GET', `/v2/models/${name}`, undefined], ['GET', `/v2/models/${name}/ready`, undefined], ['POST', `/v2/models/${name}/infer`, tensor],
      ] as const) {
        expect({ method, path, status: (await t.request(path, { method, key, json })).status }).toEqual({ method, path, status: 404 })
      }
    }
    expect((await put(t, key, classifier('constructor', ['a', 'b']))).status).toBe(201)
    expect(await (await t.request('/v1/models/constructor', { key })).json()).toMatchObject({ name: 'constructor', classes: ['a', 'b'] })
  })
})

describe('bounds on model files', () => {
  test(`a classifier of more than ${MAX_CLASSES} classes is a 422 naming the limit`, async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const labels = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`)
    const refused = await put(t, admin, classifier('many-classes', labels(MAX_CLASSES + 1)))
    expect(refused.status).toBe(422)
    expect((await problemOf(refused)).errors).toEqual([{ field: 'body.classes', message: `names ${MAX_CLASSES + 1} classes; at most ${MAX_CLASSES} are allowed` }])
    expect((await put(t, admin, classifier('many-classes', labels(MAX_CLASSES)))).status).toBe(201)
  })

  test(`a batch answering more than ${MAX_OUTPUT_VALUES} values is a 413 naming the limit, before anything runs`, async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    expect((await put(t, admin, classifier('thousand', Array.from({ length: 1000 }, (_, i) => i)))).status).toBe(201)
    const rows = MAX_OUTPUT_VALUES / 1000 + 1
    const v1 = await t.request('/v1/models/thousand/predict', { method: 'POST', key: admin, json: { instances: Array.from({ length: rows }, () => [1]) } })
    expect(v1.status).toBe(413)
    expect((await problemOf(v1)).detail).toContain(`at most ${MAX_OUTPUT_VALUES} per request`)
    const v2 = await t.request('/v2/models/thousand/infer', {
      method: 'POST', key: admin, json: { inputs: [{ name: 'input-0', shape: [rows, 1], datatype: 'FP64', data: Array<number>(rows).fill(1) }] },
    })
    expect(v2.status).toBe(413)
    expect(((await v2.json()) as { error: string }).error).toContain(`at most ${MAX_OUTPUT_VALUES} per request`)
    const small = await t.request('/v1/models/thousand/predict', { method: 'POST', key: admin, json: { instances: [[1], [2]] } })
    expect(small.status).toBe(200)
  })
})

describe(`at most ${MAX_MODELS} models`, () => {
  test('an upload of a new name past the limit is a 422 naming it; replacing one still works, and a delete frees a place', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const model = (i: number) => ({ name: `m${i}`, version: '1', kind: 'linear', features: ['x'], coef: [i], intercept: 0 })
    for (let i = t.registry.size; i < MAX_MODELS; i++) expect((await put(t, admin, model(i))).status).toBe(201)
    const refused = await put(t, admin, model(MAX_MODELS))
    expect(refused.status).toBe(422)
    expect((await problemOf(refused)).detail).toBe(`at most ${MAX_MODELS} models are served at once; delete one first`)
    expect((await put(t, admin, { ...model(MAX_MODELS - 1), version: '2' })).status).toBe(200)
    expect((await t.request('/v1/models/seed-linear', { method: 'DELETE', key: admin })).status).toBe(204)
    expect((await put(t, admin, model(MAX_MODELS))).status).toBe(201)
    expect(t.registry.size).toBe(MAX_MODELS)
  })

  test('files of MODELS_DIR past the limit are rejected saying so, and load once a place is free', async () => {
    const dir = tempDir()
    for (let i = 0; i <= MAX_MODELS; i++) {
      writeFileSync(join(dir, `m${i}.json`), JSON.stringify({ name: `m${i}`, version: '1', kind: 'linear', features: ['x'], coef: [i], intercept: 0 }))
    }
    using registry = new ModelRegistry({ dir, log: createLogger('silent'), debounceMs: 1 })
    await registry.load()
    expect(registry.size).toBe(MAX_MODELS)
    const [rejection] = registry.rejections()
    expect(registry.rejections()).toEqual([{ file: rejection!.file, message: `at most ${MAX_MODELS} models are served at once; delete one first` }])
    const waiting = rejection!.file.slice(0, -'.json'.length)
    await registry.remove(waiting === 'm0' ? 'm1' : 'm0')
    await eventually(() => registry.get(waiting), { what: `${waiting} loads` })
    expect(registry.rejections()).toEqual([])
  })
})

describe('kernel memory', () => {
  const LIMIT = 1024 * 1024

  /** An app whose kernel may grow to LIMIT bytes only, serving the reference fixtures. */
  async function smallKernel(t: TestApp) {
    const registry = new ModelRegistry({ dir: t.config.modelsDir, log: createLogger('silent'), kernelMemory: LIMIT })
    await registry.load()
    const app = createApp({ config: t.config, database: t.database, keys: t.keys, log: createLogger('silent'), registry })
    const key = await t.key(undefined, ['admin', 'predict'])
    const request = (path: string, method: string, json: unknown) =>
      app.handle(new Request(`http://localhost${path}`, { method, headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(json) }))
    return { registry, request, [Symbol.dispose]: () => registry.close() }
  }

  test('a model whose weights do not fit is a 413 naming the limit, and the models served keep serving', async () => {
    await using t = await testApp()
    using small = await smallKernel(t)
    const response = await small.request('/v1/models/huge', 'PUT', wide('huge', 50_000))
    expect(response.status).toBe(413)
    expect((await problemOf(response)).detail).toMatch(/^model huge needs \d+ MiB more of the kernel's memory, which is limited to 1 MiB$/)
    expect(small.registry.get('huge')).toBeUndefined()
    const seed = await small.request('/v1/models/seed-linear/predict', 'POST', { features: { feature1: 1, feature2: 1, feature3: 1 } })
    expect(seed.status).toBe(200)
  })

  test('a batch whose scratch the kernel cannot grow to is a 413 naming the limit, and smaller ones still run', async () => {
    await using t = await testApp()
    using small = await smallKernel(t)
    // Its weights fit, and so does one row's scratch; four rows' do not.
    expect((await small.request('/v1/models/broad', 'PUT', wide('broad', 20_000))).status).toBe(201)
    const batch = await small.request('/v1/models/broad/predict', 'POST', { instances: [[1], [2], [3], [4]] })
    expect(batch.status).toBe(413)
    expect((await problemOf(batch)).detail).toMatch(/^a batch of 4 rows of broad needs \d+ MiB more of the kernel's memory, which is limited to 1 MiB: send fewer rows$/)
    const one = await small.request('/v1/models/broad/predict', 'POST', { instances: [[2]] })
    expect(await one.json()).toMatchObject({ predictions: [40_000] })
    const v2 = await small.request('/v2/models/broad/infer', 'POST', { inputs: [{ name: 'input-0', shape: [4, 1], datatype: 'FP64', data: [1, 2, 3, 4] }] })
    expect(v2.status).toBe(413)
  })

  test('a file of MODELS_DIR that does not fit is rejected naming the limit', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'huge.json'), JSON.stringify(wide('huge', 50_000)))
    using registry = new ModelRegistry({ dir, log: createLogger('silent'), kernelMemory: LIMIT })
    await registry.load()
    expect(registry.rejections()).toEqual([{ file: 'huge.json', message: expect.stringMatching(/^needs \d+ MiB more of the kernel's memory, which is limited to 1 MiB$/) }])
  })
})

describe('rejected files', () => {
  test('GET /v1/models names a file that cannot be read and a plain reason, never a server path', async () => {
    await using t = await testApp()
    mkdirSync(join(t.config.modelsDir, 'folder.json'))
    symlinkSync('loop.json', join(t.config.modelsDir, 'loop.json'))
    await t.registry.load()
    const key = await t.key()
    const body = await (await t.request('/v1/models', { key })).text()
    expect(JSON.parse(body).rejected).toEqual([
      { file: 'folder.json', message: 'cannot be read: it is a directory' },
      { file: 'loop.json', message: 'cannot be read: too many symbolic links' },
    ])
    expect(body).not.toContain(t.dir)
    const ready = await t.request('/v2/models/loop/ready', { key })
    expect(ready.status).toBe(503)
    expect(await ready.text()).not.toContain(t.dir)
  })
})
