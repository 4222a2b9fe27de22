// XGBoost boosters as saved (NAME.xgb.json in MODELS_DIR, or the same body PUT), served over every
// request form and compared with XGBoost's own predictions (2e-5 relative; it computes in float32),
// missing values included; the objectives refused; one name, one file.
import { describe, expect, test } from 'bun:test'
import { copyFileSync, existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { eventually } from './eventually'
import { fromXgboost } from '../src/inference/formats/xgboost'
import { ModelFileError } from '../src/inference/model-file'
import { copyModels, fixtureModels, problemOf, tempDir, testApp, type TestApp } from './helpers'

type Json = Record<string, any>
type Classification = { label: string; probabilities: Record<string, number> }

const trained = join(import.meta.dir, 'fixtures/trained')
const FIXTURES = ['diabetes-xgb', 'cancer-xgb', 'iris-xgb', 'iris-xgb-softmax', 'diabetes-xgb-logistic']
const REL = 2e-5

const booster = (name: string): Json => JSON.parse(readFileSync(join(trained, `${name}.xgb.json`), 'utf8'))
const expectedOf = (name: string): Json => JSON.parse(readFileSync(join(trained, `${name}.expected.json`), 'utf8'))

/** Softmax in float64 of the margins multi:softmax's fixture records (XGBoost answers that objective's labels only). */
const softmax = (row: number[]) => {
  const m = Math.max(...row)
  const e = row.map((v) => Math.exp(v - m))
  const sum = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / sum)
}

/** The fixtures in a fresh MODELS_DIR, beside the usual reference models. */
function folderWithBoosters(): string {
  const dir = copyModels(join(tempDir(), 'models'))
  for (const name of FIXTURES) copyFileSync(join(trained, `${name}.xgb.json`), join(dir, `${name}.xgb.json`))
  return dir
}

/** Indices of values further than REL × |expected| from expected. */
function far(actual: number[], expected: number[]): number[] {
  expect(actual.length).toBe(expected.length)
  return expected.flatMap((e, i) => (Math.abs(actual[i]! - e) <= REL * Math.abs(e) ? [] : [i]))
}

function expectMatches(name: string, predictions: Array<number | Classification>): void {
  const expected = expectedOf(name)
  if (expected.predictions) {
    expect(far(predictions as number[], expected.predictions)).toEqual([])
    return
  }
  const probabilities: number[][] = expected.margins ? expected.probabilities.map(softmax) : expected.probabilities
  const classes = probabilities[0]!.map((_, j) => String(j))
  const classified = predictions as Classification[]
  expect(classified.map((p) => p.label)).toEqual(expected.labels)
  expect(far(classified.flatMap((p) => classes.map((c) => p.probabilities[c]!)), probabilities.flat())).toEqual([])
}

async function ok(response: Response): Promise<Json> {
  const text = await response.text()
  expect(response.status, text).toBe(200)
  return JSON.parse(text)
}

async function predict(t: TestApp, key: string, name: string, json: unknown): Promise<Array<number | Classification>> {
  return (await ok(await t.request(`/v1/models/${name}/predict`, { method: 'POST', key, json }))).predictions
}

describe('boosters in MODELS_DIR match XGBoost', () => {
  for (const name of FIXTURES) {
    test(`${name}: single rows by name, positional and named batches, v2 flat and nested, null as missing`, async () => {
      await using t = await testApp({ MODELS_DIR: folderWithBoosters() })
      const key = await t.key()
      const { inputs, features } = expectedOf(name)
      const model = await ok(await t.request(`/v1/models/${name}`, { key }))
      expect(model.features).toEqual(features)
      const named = inputs.map((row: unknown[]) => Object.fromEntries(features.map((f: string, i: number) => [f, row[i]])))
      const single = []
      for (const row of named) single.push(...(await predict(t, key, name, { features: row })))
      expectMatches(name, single)
      expectMatches(name, await predict(t, key, name, { instances: inputs }))
      expectMatches(name, await predict(t, key, name, { instances: named }))
      const n = features.length
      for (const data of [inputs.flat(), inputs]) {
        const body = await ok(await t.request(`/v2/models/${name}/infer`, {
          method: 'POST', key, json: { inputs: [{ name: 'input-0', shape: [inputs.length, n], datatype: 'FP64', data }] },
        }))
        const outputs = body.outputs as Array<{ name: string; data: Array<number | string>; shape: number[] }>
        const proba = outputs.find((o) => o.name === 'predict_proba')
        const predict = outputs.find((o) => o.name === 'predict')!
        if (!proba) expectMatches(name, predict.data as number[])
        else {
          const k = proba.shape[1]!
          expectMatches(name, predict.data.map((label, r) => ({
            label: label as string,
            probabilities: Object.fromEntries(Array.from({ length: k }, (_, j) => [String(j), proba.data[r * k + j] as number])),
          })))
        }
      }
    })
  }

  test('a null is a missing value, not a number: cancer-xgb row 5 with its nulls, and with them 0 or 1, as XGBoost predicts each', async () => {
    await using t = await testApp({ MODELS_DIR: folderWithBoosters() })
    const key = await t.key()
    const row: Array<number | null> = expectedOf('cancer-xgb').inputs[5]
    expect(row.filter((v) => v === null).length).toBe(2)
    // XGBoost 1.7.4's Booster.predict on this row, nulls as NaN, then as 0, then as 1.
    const xgboost = [0.9501827955245972, 0.9915378093719482, 0.8642230033874512]
    const rows = [row, row.map((v) => v ?? 0), row.map((v) => v ?? 1)]
    const served = (await predict(t, key, 'cancer-xgb', { instances: rows })) as Classification[]
    expect(far(served.map((p) => p.probabilities['1']!), xgboost)).toEqual([])
  })

  test('GET /v1/models and /v2 metadata describe a booster: kind trees, its trees, nodes, outputs, source, classes "0"…', async () => {
    await using t = await testApp({ MODELS_DIR: folderWithBoosters() })
    const key = await t.key()
    const { items } = await ok(await t.request('/v1/models', { key }))
    const iris = items.find((m: Json) => m.name === 'iris-xgb')
    expect(iris).toEqual({
      name: 'iris-xgb', version: expect.any(String), kind: 'trees', description: 'XGBoost booster (multi:softprob, 60 trees)',
      features: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'], classes: ['0', '1', '2'],
      trees: 60, nodes: expect.any(Number), outputs: 3, source: 'xgboost_json', missing: true,
    })
    const diabetes = items.find((m: Json) => m.name === 'diabetes-xgb')
    expect([diabetes.kind, diabetes.trees, diabetes.outputs, diabetes.classes]).toEqual(['trees', 100, 1, undefined])
    expect(items.find((m: Json) => m.name === 'diabetes-xgb-logistic').features).toEqual(Array.from({ length: 10 }, (_, i) => `f${i}`))
    const metadata = await ok(await t.request('/v2/models/cancer-xgb', { key }))
    expect(metadata.platform).toBe('xgboost_json')
    expect(metadata.parameters).toEqual({ kind: 'trees', trees: 60, nodes: 654, outputs: 1 })
    expect(metadata.outputs).toEqual([
      { name: 'predict', datatype: 'BYTES', shape: [-1, 1] },
      { name: 'predict_proba', datatype: 'FP64', shape: [-1, 2] },
    ])
  })
})

const PARAM = 'body.learner.learner_model_param'
/** A multi:softprob objective of `numClass` classes (the booster's trees unchanged). */
const multi = (numClass: string) => ({ objective: { name: 'multi:softprob' }, learner_model_param: { base_score: '5E-1', num_class: numClass, num_feature: '30' } })

describe('PUT of a booster', () => {
  test('the body save_model wrote is recognised by its content, written as NAME.xgb.json, served at once, and replaces NAME.json', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const created = await t.request('/v1/models/cancer', { method: 'PUT', key: admin, json: booster('cancer-xgb') })
    expect(created.status).toBe(201)
    expect(await created.json()).toMatchObject({ name: 'cancer', kind: 'trees', trees: 60, source: 'xgboost_json' })
    expect(existsSync(join(t.config.modelsDir, 'cancer.xgb.json'))).toBe(true)
    expectMatches('cancer-xgb', await predict(t, admin, 'cancer', { instances: expectedOf('cancer-xgb').inputs }))

    const replaced = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json: booster('diabetes-xgb') })
    expect(replaced.status).toBe(200)
    expect(readdirSync(t.config.modelsDir).filter((f) => f.startsWith('seed-linear'))).toEqual(['seed-linear.xgb.json'])
    expectMatches('diabetes-xgb', await predict(t, admin, 'seed-linear', { instances: expectedOf('diabetes-xgb').inputs }))
    // And back: a model file of ours replaces the booster's file.
    const back = { ...JSON.parse(readFileSync(join(fixtureModels, 'seed-linear.json'), 'utf8')), version: '2' }
    expect((await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json: back })).status).toBe(200)
    expect(readdirSync(t.config.modelsDir).filter((f) => f.startsWith('seed-linear'))).toEqual(['seed-linear.json'])
  })

  const bad: Array<[string, (b: Json) => void, string, string]> = [
    ['an objective not served', (b) => (b.learner.objective.name = 'rank:pairwise'), 'body.learner.objective.name', 'the objectives served are'],
    ['a linear booster', (b) => (b.learner.gradient_booster.name = 'gblinear'), 'body.learner.gradient_booster.name', 'only gbtree'],
    ['categorical splits', (b) => (b.learner.gradient_booster.model.trees[2].split_type[0] = 1), 'body.learner.gradient_booster.model.trees[2].split_type', 'categorical'],
    ['a child index out of range', (b) => (b.learner.gradient_booster.model.trees[1].left_children[0] = 999), 'body.trees[1].left[0]', 'must be a node index'],
    ['a feature index past num_feature', (b) => (b.learner.gradient_booster.model.trees[0].split_indices[0] = 30), 'body.trees[0].feature[0]', 'from 0 to 29'],
    ['arrays of different lengths', (b) => b.learner.gradient_booster.model.trees[0].default_left.pop(), 'body.learner.gradient_booster.model.trees[0].default_left', 'expected 15'],
    ['tree_info of another length', (b) => b.learner.gradient_booster.model.tree_info.pop(), 'body.learner.gradient_booster.model.tree_info', 'expected 60'],
    ['a logistic base score that is no probability', (b) => (b.learner.learner_model_param.base_score = '1.5'), 'body.learner.learner_model_param.base_score', 'strictly between 0 and 1'],
    ['an empty base score', (b) => (b.learner.learner_model_param.base_score = ''), `${PARAM}.base_score`, 'must be a finite number'],
    ['a blank base score', (b) => (b.learner.learner_model_param.base_score = ' '), `${PARAM}.base_score`, 'must be a finite number'],
    ['an empty base score vector', (b) => (b.learner.learner_model_param.base_score = '[]'), `${PARAM}.base_score`, 'expected one number or 1'],
    ['a base score vector of another length', (b) => (b.learner.learner_model_param.base_score = '[5E-1,5E-1]'), `${PARAM}.base_score`, 'expected one number or 1'],
    ['num_class 2^32', (b) => Object.assign(b.learner, multi('4294967296')), `${PARAM}.num_class`, 'from 2 to 1000'],
    ['num_class 1e8', (b) => Object.assign(b.learner, multi('1e8')), `${PARAM}.num_class`, 'from 2 to 1000'],
    ['num_class 2.5', (b) => Object.assign(b.learner, multi('2.5')), `${PARAM}.num_class`, 'whole number'],
    ['num_feature 2^32', (b) => (b.learner.learner_model_param.num_feature = '4294967296'), `${PARAM}.num_feature`, 'from 1 to 100000 (MAX_BOOSTER_FEATURES)'],
    ['num_feature 1e8', (b) => (b.learner.learner_model_param.num_feature = '1e8'), `${PARAM}.num_feature`, 'MAX_BOOSTER_FEATURES'],
    ['num_feature 30.5', (b) => (b.learner.learner_model_param.num_feature = '30.5'), `${PARAM}.num_feature`, 'whole number'],
    ['feature_names not num_feature long', (b) => b.learner.feature_names.pop(), 'body.learner.feature_names', 'has 29 names; num_feature is 30'],
    ['two targets', (b) => (b.learner.learner_model_param.num_target = '2'), `${PARAM}.num_target`, 'multi-output'],
    ['vector leaves (a multi-output tree)', (b) => (b.learner.gradient_booster.model.trees[3].tree_param.size_leaf_vector = '2'), 'body.learner.gradient_booster.model.trees[3].tree_param.size_leaf_vector', 'multi-output trees'],
  ]
  for (const [what, change, field, message] of bad) {
    test(`a booster with ${what} is a 422 naming ${field}; nothing changes`, async () => {
      await using t = await testApp()
      const admin = await t.key(undefined, ['admin'])
      const body = booster('cancer-xgb')
      change(body)
      const before = readdirSync(t.config.modelsDir).sort()
      const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json: body })
      expect(response.status).toBe(422)
      expect((await problemOf(response)).errors).toEqual([{ field, message: expect.stringContaining(message) }])
      expect(readdirSync(t.config.modelsDir).sort()).toEqual(before)
      expect((await ok(await t.request('/v1/models/seed-linear', { key: admin }))).kind).toBe('linear')
    })
  }
})

describe('one name, one file', () => {
  test('NAME.json beside NAME.xgb.json: NAME.json serves and the booster is listed as rejected; removing NAME.json serves the booster', async () => {
    const dir = folderWithBoosters()
    writeFileSync(join(dir, 'diabetes-xgb.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(fixtureModels, 'diabetes-linear.json'), 'utf8')), name: 'diabetes-xgb' }))
    await using t = await testApp({ MODELS_DIR: dir })
    const key = await t.key()
    expect((await ok(await t.request('/v1/models/diabetes-xgb', { key }))).kind).toBe('linear')
    expect(t.registry.rejections()).toEqual([{ file: 'diabetes-xgb.xgb.json', message: expect.stringContaining('diabetes-xgb.json defines the same model') }])
    t.registry.watch()
    unlinkSync(join(dir, 'diabetes-xgb.json'))
    // Between the two, the name serves nothing for a moment (a 404).
    await eventually(async () => ((await (await t.request('/v1/models/diabetes-xgb', { key })).json()) as Json).kind === 'trees', { what: 'the booster serves' })
    expect(t.registry.rejections()).toEqual([])
  })

  test('a booster file changed in place is reloaded: its version (the file\'s digest) and its predictions change', async () => {
    const dir = folderWithBoosters()
    await using t = await testApp({ MODELS_DIR: dir })
    const key = await t.key()
    const before = await ok(await t.request('/v1/models/diabetes-xgb', { key }))
    const row = { instances: [expectedOf('diabetes-xgb').inputs[0]] }
    const [first] = await predict(t, key, 'diabetes-xgb', row)
    const changed = booster('diabetes-xgb')
    changed.learner.learner_model_param.base_score = '1.05E2'
    t.registry.watch()
    writeFileSync(join(dir, 'diabetes-xgb.xgb.json'), JSON.stringify(changed))
    await eventually(async () => (await ok(await t.request('/v1/models/diabetes-xgb', { key }))).version !== before.version, { what: 'the new version serves' })
    const [second] = await predict(t, key, 'diabetes-xgb', row)
    expect(second as number).toBeCloseTo((first as number) + 104.5, 3)
  })

  test('a NAME.xgb.json that is not a booster is rejected, naming learner', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    copyFileSync(join(fixtureModels, 'seed-linear.json'), join(dir, 'other.xgb.json'))
    await using t = await testApp({ MODELS_DIR: dir })
    expect(t.registry.rejections()).toEqual([{ file: 'other.xgb.json', message: expect.stringContaining('learner: is missing') }])
  })
})

describe('boosters as XGBoost 2.x saves them, and what no booster may make a 5xx', () => {
  test('cancer-xgb-2x (cancer-xgb with base_score "[5E-1]", as 2.x writes it) predicts as cancer-xgb, in MODELS_DIR and PUT', async () => {
    const dir = folderWithBoosters()
    copyFileSync(join(trained, 'cancer-xgb-2x.xgb.json'), join(dir, 'cancer-xgb-2x.xgb.json'))
    await using t = await testApp({ MODELS_DIR: dir })
    const admin = await t.key(undefined, ['admin', 'predict'])
    const { inputs } = expectedOf('cancer-xgb')
    expectMatches('cancer-xgb', await predict(t, admin, 'cancer-xgb-2x', { instances: inputs }))
    expect((await t.request('/v1/models/cancer2', { method: 'PUT', key: admin, json: booster('cancer-xgb-2x') })).status).toBe(201)
    expectMatches('cancer-xgb', await predict(t, admin, 'cancer2', { instances: inputs }))
  })

  test('base_score "x", "[x]" and "[a,b,c]" (one per class) are the base; a multiclass "[x]" serves every class', () => {
    const base = (b: Json) => fromXgboost(b, 'b', '1').base
    const iris = booster('iris-xgb')
    for (const [score, expected] of [['5E-1', [0.5, 0.5, 0.5]], ['[5E-1]', [0.5, 0.5, 0.5]], [' [1E-1, 2E-1,3E-1] ', [0.1, 0.2, 0.3]]] as const) {
      iris.learner.learner_model_param.base_score = score
      expect(base(iris)).toEqual(expected)
    }
    const diabetes = booster('diabetes-xgb')
    diabetes.learner.learner_model_param.base_score = '[1.05E2]'
    expect(base(diabetes)).toEqual([105])
  })

  test('iris-xgb with base_score "[5E-1,5E-1,5E-1]" predicts as iris-xgb', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const body = booster('iris-xgb')
    body.learner.learner_model_param.base_score = '[5E-1,5E-1,5E-1]'
    expect((await t.request('/v1/models/iris', { method: 'PUT', key: admin, json: body })).status).toBe(201)
    expectMatches('iris-xgb', await predict(t, admin, 'iris', { instances: expectedOf('iris-xgb').inputs }))
  })

  test('any other error while converting a booster is a ModelFileError (a 422), naming learner', () => {
    const body = booster('cancer-xgb')
    Object.defineProperty(body.learner.gradient_booster.model.trees[0], 'left_children', { get: () => { throw new RangeError('Invalid array length') } })
    expect(() => fromXgboost(body, 'b', '1')).toThrow(ModelFileError)
    expect(() => fromXgboost(body, 'b', '1')).toThrow('learner: could not be read as an XGBoost booster (Invalid array length)')
  })

  test('a booster file of num_class 2^32 in MODELS_DIR is listed as rejected, naming num_class', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    const body = booster('iris-xgb')
    body.learner.learner_model_param.num_class = '4294967296'
    writeFileSync(join(dir, 'huge.xgb.json'), JSON.stringify(body))
    await using t = await testApp({ MODELS_DIR: dir })
    expect(t.registry.rejections()).toEqual([{ file: 'huge.xgb.json', message: expect.stringContaining('learner.learner_model_param.num_class: is "4294967296"') }])
  })
})

describe('no model name ends in .xgb (NAME.xgb.json is the booster of model NAME)', () => {
  test('PUT /v1/models/seed-linear.xgb is a 422 naming the rule; seed-linear.json stays and serves', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    for (const name of ['seed-linear.xgb', 'seed-linear.XGB']) {
      const response = await t.request(`/v1/models/${name}`, { method: 'PUT', key: admin, json: { ...booster('diabetes-xgb'), name: undefined } })
      expect(response.status).toBe(422)
      expect((await problemOf(response)).errors).toEqual([{ field: 'params.name', message: expect.stringContaining('not ending in .xgb') }])
    }
    expect(readdirSync(t.config.modelsDir).filter((f) => f.startsWith('seed-linear'))).toEqual(['seed-linear.json'])
    expect((await ok(await t.request('/v1/models/seed-linear', { key: admin }))).kind).toBe('linear')
  })

  test('the registry refuses such a name on put, and a file seed-linear.xgb.xgb.json in MODELS_DIR is rejected naming the rule', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    copyFileSync(join(trained, 'diabetes-xgb.xgb.json'), join(dir, 'seed-linear.xgb.xgb.json'))
    await using t = await testApp({ MODELS_DIR: dir })
    expect(t.registry.rejections()).toEqual([{ file: 'seed-linear.xgb.xgb.json', message: expect.stringContaining('not ending in .xgb') }])
    await expect(t.registry.put('seed-linear.xgb', booster('diabetes-xgb'))).rejects.toThrow('name: must match')
    expect(readdirSync(dir).filter((f) => f.startsWith('seed-linear')).sort()).toEqual(['seed-linear.json', 'seed-linear.xgb.xgb.json'])
  })
})
