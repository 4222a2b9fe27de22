// The model registry: validation of model files (each kind of breakage), hot reload through the
// file system, upload and delete through the API, and swaps under a steady stream of predictions.
import { describe, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { deflateSync } from 'node:zlib'
import { eventually } from './eventually'
import { copyModels, fixtureModels, problemOf, tempDir, testApp, type TestApp } from './helpers'
import { cliKey, startServer } from './server'

type Json = Record<string, any>

const fixture = (name: string): Json => JSON.parse(readFileSync(join(fixtureModels, `${name}.json`), 'utf8'))

/** A fixture renamed to `broken`, changed by `change`. */
function broken(base: string, change: (model: Json) => void): Json {
  const model = { ...fixture(base), name: 'broken' }
  change(model)
  return model
}

async function versionOf(t: TestApp, key: string, name: string): Promise<string | null> {
  const response = await t.request(`/v1/models/${name}`, { key })
  if (response.status === 404) return null
  return ((await response.json()) as { version: string }).version
}

async function seedPrediction(t: TestApp, key: string): Promise<{ status: number; version?: string; value?: number }> {
  const response = await t.request('/v1/models/seed-linear/predict', { method: 'POST', key, json: { features: { feature1: 1, feature2: 1, feature3: 1 } } })
  if (response.status !== 200) return { status: response.status }
  const body = (await response.json()) as { version: string; predictions: number[] }
  return { status: 200, version: body.version, value: body.predictions[0] }
}

/** seed-linear at `version` predicting exactly `value` for the row (1, 1, 1), so answers tell versions apart. */
function seedVersion(version: string, value: number): Json {
  return { ...fixture('seed-linear'), version, coef: [value, 0, 0], intercept: 0 }
}

const write = (dir: string, file: string, model: Json | string) =>
  writeFileSync(join(dir, file), typeof model === 'string' ? model : JSON.stringify(model, null, 1))

describe('validation of model files', () => {
  const cases: Array<[string, string, Json | string, string]> = [
    ['text that is not JSON', 'broken.json', '{"name": "broken",', 'is not valid JSON'],
    ['JSON that is not an object', 'broken.json', '[1, 2]', 'must be a JSON object'],
    ['an unknown kind', 'broken.json', broken('seed-linear', (m) => (m.kind = 'forest')), 'kind: must be one of linear, logistic, mlp'],
    ['a name other than the file name', 'broken.json', broken('seed-linear', (m) => (m.name = 'other')), 'name: must be "broken"'],
    ['a file name that is no model name', 'bad name.json', broken('seed-linear', (m) => (m.name = 'bad name')), 'the file name must be a model name'],
    ['a name that is no string', 'broken.json', broken('seed-linear', (m) => (m.name = 5)), 'name: must be "broken"'],
    ['no version', 'broken.json', broken('seed-linear', (m) => delete m.version), 'version: must be a non-empty string'],
    ['a numeric version', 'broken.json', broken('seed-linear', (m) => (m.version = 2)), 'version: must be a non-empty string'],
    ['no features', 'broken.json', broken('seed-linear', (m) => (m.features = [])), 'features: must name at least one feature'],
    ['a repeated feature', 'broken.json', broken('seed-linear', (m) => (m.features = ['a', 'b', 'a'])), 'features[2]: repeats the feature "a"'],
    ['an empty feature name', 'broken.json', broken('seed-linear', (m) => (m.features = ['', 'b', 'c'])), 'features[0]: must be a non-empty string'],
    ['a feature that is no string', 'broken.json', broken('seed-linear', (m) => (m.features = ['a', 2, 'c'])), 'features[1]: must be a non-empty string'],
    ['an unknown field', 'broken.json', broken('seed-linear', (m) => (m.classes = ['a', 'b'])), 'classes: is not a field of a linear model'],
    ['linear: coef shorter than the features', 'broken.json', broken('seed-linear', (m) => (m.coef = [1, 2])), 'coef: has 2 values, expected 3'],
    ['linear: a string coefficient', 'broken.json', broken('seed-linear', (m) => (m.coef = [1, '2', 3])), 'coef[1]: must be a number'],
    ['linear: an intercept that is no number', 'broken.json', broken('seed-linear', (m) => (m.intercept = [1])), 'intercept: must be a number'],
    ['a number too large for a double (1e400)', 'broken.json',
      JSON.stringify(broken('seed-linear', (m) => (m.coef = [1, 123456789, 3]))).replace('123456789', '1e400'), 'coef[1]: must be a finite number'],
    ['logistic: fewer coef rows than classes', 'broken.json', broken('iris-logistic', (m) => m.coef.pop()), 'coef: has 2 rows, expected 3'],
    ['logistic: a short coef row', 'broken.json', broken('iris-logistic', (m) => m.coef[1].pop()), 'coef[1]: has 3 values, expected 4'],
    ['logistic: intercept of the wrong length', 'broken.json', broken('iris-logistic', (m) => m.intercept.pop()), 'intercept: has 2 values, expected 3'],
    ['logistic: a repeated class', 'broken.json', broken('iris-logistic', (m) => (m.classes = ['a', 'b', 'a'])), 'classes[2]: repeats the label "a"'],
    ['logistic: one class', 'broken.json', broken('iris-logistic', (m) => {
      m.classes = ['a']
      m.coef = [m.coef[0]]
      m.intercept = [0]
    }), 'classes: must name at least two classes'],
    ['logistic: classes missing', 'broken.json', broken('iris-logistic', (m) => delete m.classes), 'classes: must be an array'],
    ['mlp: no layers', 'broken.json', broken('diabetes-mlp', (m) => (m.layers = [])), 'layers: must hold at least one layer'],
    ['mlp: a first layer that does not take every feature', 'broken.json', broken('diabetes-mlp', (m) => m.layers[0].weights.pop()),
      'layers[0].weights: has 9 rows, expected 10 (one per features)'],
    ['mlp: layers that do not chain', 'broken.json', broken('diabetes-mlp', (m) => m.layers[1].weights.pop()),
      'layers[1].weights: has 31 rows, expected 32 (one per outputs of layers[0])'],
    ['mlp: a weights row longer than the bias', 'broken.json', broken('diabetes-mlp', (m) => m.layers[0].weights[3].push(0)),
      'layers[0].weights[3]: has 33 values, expected 32'],
    ['mlp: an unknown activation', 'broken.json', broken('diabetes-mlp', (m) => (m.layers[1].activation = 'gelu')), 'layers[1].activation: must be one of'],
    ['mlp: a regressor with two outputs', 'broken.json', broken('diabetes-mlp', (m) => {
      m.layers[2].bias.push(0)
      for (const row of m.layers[2].weights) row.push(0)
    }), 'layers[2].bias: has 2 outputs; a regressor (no classes) has 1'],
    ['mlp: outputs that do not fit the classes', 'broken.json', broken('diabetes-mlp', (m) => (m.classes = ['a', 'b', 'c'])),
      'layers[2].bias: has 1 outputs for 3 classes'],
    ['mlp: a classifier whose output is no probability', 'broken.json', broken('diabetes-mlp', (m) => (m.classes = ['a', 'b'])),
      'layers[2].activation: must be sigmoid'],
    ['mlp: a layer with another field', 'broken.json', broken('diabetes-mlp', (m) => (m.layers[0].dropout = 0.5)), 'layers[0].dropout: is not a field of a layer'],
  ]

  test.each(cases)('a file with %s is reported and skipped; the others serve', async (_, file, content, message) => {
    const dir = copyModels(join(tempDir(), 'models'))
    write(dir, file, content)
    await using t = await testApp({ MODELS_DIR: dir })
    const key = await t.key()
    const list = (await (await t.request('/v1/models', { key })).json()) as { items: Array<{ name: string }>; rejected: Array<{ file: string; message: string }> }
    expect(list.items.map((m) => m.name)).toEqual(['diabetes-linear', 'diabetes-mlp', 'iris-logistic', 'seed-linear'])
    expect(list.rejected).toEqual([{ file, message: expect.stringContaining(message) }])
    expect((await seedPrediction(t, key)).status).toBe(200)
    expect((await t.request(`/v1/models/${file.slice(0, -5)}`, { key })).status).toBe(404)
  })

  test('hidden files, editor leftovers and other extensions are not model files', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    write(dir, '.seed-linear.json.swp', 'garbage')
    write(dir, '.#seed-linear.json', 'garbage')
    write(dir, 'seed-linear.json~', 'garbage')
    write(dir, 'notes.txt', 'garbage')
    await using t = await testApp({ MODELS_DIR: dir })
    expect(t.registry.size).toBe(4)
    expect(t.registry.rejections()).toEqual([])
  })

  test('a missing MODELS_DIR is created and serves nothing until models arrive', async () => {
    const dir = join(tempDir(), 'not', 'yet')
    await using t = await testApp({ MODELS_DIR: dir })
    expect(existsSync(dir)).toBe(true)
    expect(t.registry.ready).toBe(true)
    expect(t.registry.size).toBe(0)
  })
})

describe('hot reload through the file system', () => {
  test('a changed file is reloaded, an invalid change keeps the old version, a deleted file unloads, a new file loads', async () => {
    await using t = await testApp()
    t.registry.watch()
    const key = await t.key()
    const dir = t.config.modelsDir

    write(dir, 'seed-linear.json', seedVersion('2', 2))
    await eventually(async () => (await versionOf(t, key, 'seed-linear')) === '2', { what: 'version 2 serves' })
    expect(await seedPrediction(t, key)).toEqual({ status: 200, version: '2', value: 2 })

    write(dir, 'seed-linear.json', { ...seedVersion('3', 3), coef: [1, 2] })
    await eventually(() => t.registry.rejections().length === 1, { what: 'the bad file is rejected' })
    expect(t.registry.rejections()).toEqual([{ file: 'seed-linear.json', message: 'coef: has 2 values, expected 3' }])
    expect(await seedPrediction(t, key)).toEqual({ status: 200, version: '2', value: 2 })

    write(dir, 'seed-linear.json', seedVersion('4', 4))
    await eventually(async () => (await versionOf(t, key, 'seed-linear')) === '4', { what: 'version 4 serves' })
    expect(t.registry.rejections()).toEqual([])

    unlinkSync(join(dir, 'seed-linear.json'))
    await eventually(async () => (await versionOf(t, key, 'seed-linear')) === null, { what: 'seed-linear is unloaded' })
    expect((await seedPrediction(t, key)).status).toBe(404)

    write(dir, 'fresh.json', { ...seedVersion('1', 7), name: 'fresh' })
    await eventually(async () => (await versionOf(t, key, 'fresh')) === '1', { what: 'fresh loads' })
    // Every replaced version was released: only the served nets live in the kernel.
    expect(t.registry.compiledNets).toBe(t.registry.size)
  })

  test('editor-style saves (a temp file renamed over the model) are picked up', async () => {
    await using t = await testApp()
    t.registry.watch()
    const key = await t.key()
    const dir = t.config.modelsDir
    for (const version of ['2', '3', '4']) {
      write(dir, '.seed-linear.json.tmp', seedVersion(version, Number(version)))
      renameSync(join(dir, '.seed-linear.json.tmp'), join(dir, 'seed-linear.json'))
      await eventually(async () => (await versionOf(t, key, 'seed-linear')) === version, { what: `version ${version} serves` })
    }
    expect(await seedPrediction(t, key)).toEqual({ status: 200, version: '4', value: 4 })
  })

  test('polling finds what fs.watch does not report (another host writing a shared volume)', async () => {
    // testApp's registry is loaded but not watching: only poll() can see these changes.
    await using t = await testApp()
    const key = await t.key()
    const dir = t.config.modelsDir
    write(dir, 'seed-linear.json', seedVersion('2', 2))
    unlinkSync(join(dir, 'iris-logistic.json'))
    expect(await t.registry.poll()).toEqual(['iris-logistic.json', 'seed-linear.json'])
    await eventually(async () => (await versionOf(t, key, 'seed-linear')) === '2', { what: 'version 2 serves' })
    await eventually(async () => (await versionOf(t, key, 'iris-logistic')) === null, { what: 'iris-logistic is unloaded' })
    // Nothing else changed, so nothing is read again.
    expect(await t.registry.poll()).toEqual([])
  })

  test('touching a file without changing it keeps the compiled version', async () => {
    await using t = await testApp()
    t.registry.watch()
    const before = t.registry.get('seed-linear')
    const text = readFileSync(join(t.config.modelsDir, 'seed-linear.json'), 'utf8')
    writeFileSync(join(t.config.modelsDir, 'seed-linear.json'), text)
    write(t.config.modelsDir, 'marker.json', { ...seedVersion('1', 1), name: 'marker' })
    // Events are handled in order of their debounce timers, so once marker loaded, the touch was seen.
    await eventually(() => t.registry.get('marker') !== undefined, { what: 'the marker loads' })
    expect(t.registry.get('seed-linear')).toBe(before!)
  })
})

describe('PUT and DELETE /v1/models/{name}', () => {
  test('PUT creates (201, Location) and replaces (200), writing the file and serving before it answers', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const created = await t.request('/v1/models/uploaded', { method: 'PUT', key: admin, json: { ...seedVersion('1', 5), name: 'uploaded' } })
    expect(created.status).toBe(201)
    expect(created.headers.get('location')).toBe('/v1/models/uploaded')
    expect(await created.json()).toEqual({
      name: 'uploaded', version: '1', kind: 'linear', description: "The seed's three-feature linear model", features: ['feature1', 'feature2', 'feature3'],
    })
    const onDisk = JSON.parse(readFileSync(join(t.config.modelsDir, 'uploaded.json'), 'utf8'))
    expect(onDisk).toEqual({ ...seedVersion('1', 5), name: 'uploaded' })

    const replaced = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json: seedVersion('9', 9) })
    expect(replaced.status).toBe(200)
    expect(replaced.headers.get('location')).toBeNull()
    // No waiting: the answer was sent after the swap.
    expect(await seedPrediction(t, admin)).toEqual({ status: 200, version: '9', value: 9 })
    expect(readdirSync(t.config.modelsDir).sort()).toEqual(['diabetes-linear.json', 'diabetes-mlp.json', 'iris-logistic.json', 'seed-linear.json', 'uploaded.json'])
  })

  test.each([
    ['a bad coefficient', 'seed-linear', { ...seedVersion('2', 2), coef: [1, 'x', 3] }, 'body.coef[1]', 'must be a number'],
    ['a name other than the URL', 'seed-linear', { ...seedVersion('2', 2), name: 'other' }, 'body.name', 'must be "seed-linear"'],
    ['a URL name that is no file name', '.hidden', { ...seedVersion('2', 2), name: '.hidden' }, 'params.name', 'must match'],
    ['an unknown field', 'seed-linear', { ...seedVersion('2', 2), extra: 1 }, 'body.extra', ''],
    ['layers that do not chain', 'diabetes-mlp', broken('diabetes-mlp', (m) => {
      m.name = 'diabetes-mlp'
      m.layers[1].weights.pop()
    }), 'body.layers[1].weights', 'has 31 rows'],
  ])('PUT with %s is a 422 and the old version keeps serving', async (_, name, json, field, message) => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    const before = readdirSync(t.config.modelsDir).map((file) => [file, readFileSync(join(t.config.modelsDir, file), 'utf8')])
    const response = await t.request(`/v1/models/${name}`, { method: 'PUT', key: admin, json })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors).toEqual([{ field, message: expect.stringContaining(message) }])
    expect(await seedPrediction(t, admin)).toEqual({ status: 200, version: '1', value: 0.24999999999999956 })
    expect(await versionOf(t, admin, 'diabetes-mlp')).toBe('1')
    // Nothing written, no temp file left.
    expect(readdirSync(t.config.modelsDir).map((file) => [file, readFileSync(join(t.config.modelsDir, file), 'utf8')])).toEqual(before)
  })

  test('DELETE unloads the model and removes its file; a second DELETE is a 404', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin'])
    expect((await t.request('/v1/models/iris-logistic', { method: 'DELETE', key: admin })).status).toBe(204)
    expect(existsSync(join(t.config.modelsDir, 'iris-logistic.json'))).toBe(false)
    expect((await t.request('/v1/models/iris-logistic', { key: admin })).status).toBe(404)
    const again = await t.request('/v1/models/iris-logistic', { method: 'DELETE', key: admin })
    expect(again.status).toBe(404)
    await problemOf(again)
    expect(t.registry.compiledNets).toBe(3)
  })

  test('DELETE removes a rejected file too', async () => {
    const dir = copyModels(join(tempDir(), 'models'))
    write(dir, 'broken.json', '{')
    await using t = await testApp({ MODELS_DIR: dir })
    const admin = await t.key(undefined, ['admin'])
    expect(t.registry.rejections().length).toBe(1)
    expect((await t.request('/v1/models/broken', { method: 'DELETE', key: admin })).status).toBe(204)
    expect(existsSync(join(dir, 'broken.json'))).toBe(false)
    expect(t.registry.rejections()).toEqual([])
  })
})

describe('hot reload under a steady stream of predictions', () => {
  test('replacing seed-linear via the file system and via PUT fails no request; each answer is one version, then only the newest', async () => {
    await using t = await testApp()
    t.registry.watch()
    const key = await t.key(undefined, ['admin'])
    const dir = t.config.modelsDir
    const server = t.app.listen({ port: 0, hostname: '127.0.0.1' })
    const url = `http://127.0.0.1:${server.server!.port}/v1/models/seed-linear/predict`
    const body = JSON.stringify({ features: { feature1: 1, feature2: 1, feature3: 1 } })
    // Each version predicts its own number for (1, 1, 1); version 1 is the fixture.
    const expected = new Map<string, number>([['1', 0.24999999999999956]])
    const order = ['1']

    let running = true
    const failures: string[] = []
    const answers: string[][] = []
    const worker = async (w: number) => {
      answers[w] = []
      while (running) {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body })
        const text = await response.text()
        if (response.status !== 200) {
          failures.push(`${response.status} ${text}`)
          continue
        }
        const { version, predictions } = JSON.parse(text) as { version: string; predictions: number[] }
        if (expected.get(version) !== predictions[0]) failures.push(`version ${version} answered ${predictions[0]}`)
        answers[w]!.push(version)
      }
    }
    const workers = Array.from({ length: 8 }, (_, w) => worker(w))
    const served = async (version: string) => {
      await eventually(async () => answers.every((a) => a.at(-1) === version) && (await versionOf(t, key, 'seed-linear')) === version, { what: `version ${version} serves` })
    }

    try {
      await eventually(() => answers.length === 8 && answers.every((a) => a.length > 0), { what: 'every worker answered' })
      for (let v = 2; v <= 9; v++) {
        const version = String(v)
        const model = seedVersion(version, v * 10)
        expected.set(version, v * 10)
        order.push(version)
        if (v <= 3) write(dir, 'seed-linear.json', model)
        else if (v <= 5) {
          write(dir, '.next.tmp', model)
          renameSync(join(dir, '.next.tmp'), join(dir, 'seed-linear.json'))
        } else {
          const response = await fetch(`http://127.0.0.1:${server.server!.port}/v1/models/seed-linear`, {
            method: 'PUT', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify(model),
          })
          expect(response.status).toBe(200)
        }
        await served(version)
      }
    } finally {
      running = false
      await Promise.all(workers)
      await t.app.stop()
    }

    expect(failures).toEqual([])
    // Per worker, versions only move forward: an answer comes from the version before a swap or the one after.
    for (const seen of answers) {
      const ranks = seen.map((version) => order.indexOf(version))
      expect(ranks.every((rank, i) => rank >= 0 && (i === 0 || rank >= ranks[i - 1]!))).toBe(true)
      expect(seen.at(-1)).toBe('9')
    }
    expect(answers.flat().length).toBeGreaterThan(100)
    expect(t.registry.compiledNets).toBe(t.registry.size)
  }, 30_000)
})

describe('what PUT /v1/models/{name} refuses before it replaces anything', () => {
  /** A trees model of `count` one-split trees on feature1: about 100 bytes of JSON per tree. */
  const stumps = (count: number) => ({
    name: 'seed-linear', version: 'stumps', kind: 'trees', features: ['feature1', 'feature2', 'feature3'], outputs: 1,
    comparison: 'le32', accumulate: 'f64', aggregate: 'sum', base: [0], link: 'identity',
    trees: Array.from({ length: count }, (_, t) => ({ output: 0, width: 1, feature: [0, -1, -1], threshold: [t, 0, 0], left: [1, -1, -1], right: [2, -1, -1], value: [0, 1, 2] })),
  })
  const unchanged = async (t: TestApp, admin: string) => {
    expect(await seedPrediction(t, admin)).toEqual({ status: 200, version: '1', value: 0.24999999999999956 })
    expect(readdirSync(t.config.modelsDir).sort()).toEqual(['diabetes-linear.json', 'diabetes-mlp.json', 'iris-logistic.json', 'seed-linear.json'])
  }
  // What pickle.dumps and joblib.dump write first: protocol 4 and 5 pickles, a zlib-compressed joblib.
  const pickles: Array<[string, Uint8Array]> = [
    ['a protocol 4 pickle', Uint8Array.from([0x80, 0x04, 0x95, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x08])],
    ['a protocol 5 pickle', Uint8Array.from([0x80, 0x05, 0x95, 0x10, 0x00, 0x00])],
    ['a zlib-compressed joblib', new Uint8Array(deflateSync(Uint8Array.from([0x80, 0x04, 0x95, 1, 2, 3])))],
    // joblib.dump(..., compress='lzma'), and pickle.dumps(..., protocol=0 or 1) of a dict, a list, an estimator.
    ['an lzma-compressed joblib', Uint8Array.from([0x5d, 0x00, 0x00, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff])],
    ['a protocol 0 pickle of a dict', new TextEncoder().encode('(dp0\nVa\np1\nI1\ns.')],
    ['a protocol 0 pickle of a list', new TextEncoder().encode('(lp0\nI1\na.')],
    ['a protocol 0 pickle of an instance', new TextEncoder().encode('(i__main__\nModel\np0\n.')],
    ['a protocol 0 pickle of an estimator', new TextEncoder().encode('ccopy_reg\n_reconstructor\np0\n(csklearn.linear_model._base\nLinearRegression\n')],
    ['a protocol 0 pickle of a builtin', new TextEncoder().encode('c__builtin__\nset\np0\n((lp1\ntp2\nRp3\n.')],
    ['a protocol 1 pickle of a dict', Uint8Array.from([0x7d, 0x71, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61])],
  ]
  for (const [what, bytes] of pickles) {
    test(`${what} sent as JSON is a 415 pointing to scripts/export-sklearn.py`, async () => {
      await using t = await testApp()
      const admin = await t.key(undefined, ['admin', 'predict'])
      const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, body: bytes, headers: { 'content-type': 'application/json' } })
      expect(response.status).toBe(415)
      expect((await problemOf(response)).detail).toContain('scripts/export-sklearn.py')
      await unchanged(t, admin)
    })
  }

  test.each(['application/octet-stream', 'application/x-pickle'])('a body sent as %s is a 415 pointing to scripts/export-sklearn.py', async (type) => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, body: pickles[0]![1], headers: { 'content-type': type } })
    expect(response.status).toBe(415)
    expect((await problemOf(response)).detail).toMatch(/must be JSON.*scripts\/export-sklearn\.py/)
    await unchanged(t, admin)
  })

  test('an upload past the service-wide 1 MiB is accepted up to 64 MiB (here 2 MiB of trees)', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const json = stumps(25_000)
    expect(JSON.stringify(json).length).toBeGreaterThan(2 * 1024 * 1024)
    const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json })
    expect(response.status, await response.clone().text()).toBe(200)
    expect(await response.json()).toMatchObject({ kind: 'trees', trees: 25_000, nodes: 75_000 })
  })

  test('the real server lets an upload of more than 16 MiB through to the route (here 20 MiB of trees)', async () => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const admin = await cliKey(databaseUrl, 'uploader', ['admin', 'predict'])
    await using server = await startServer({ DATABASE_URL: databaseUrl, MODELS_DIR: copyModels(join(dir, 'models')) })
    const body = JSON.stringify(stumps(200_000))
    expect(body.length).toBeGreaterThan(20 * 1024 * 1024)
    const response = await fetch(`${server.url}/v1/models/seed-linear`, { method: 'PUT', body, headers: { 'content-type': 'application/json', 'x-api-key': admin } })
    expect(response.status, await response.clone().text()).toBe(200)
    expect(await response.json()).toMatchObject({ kind: 'trees', trees: 200_000 })
  }, 60_000)

  test('an upload past 64 MiB is a 413', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const body = new Uint8Array(64 * 1024 * 1024 + 1).fill(0x20)
    const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, body, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } })
    expect(response.status).toBe(413)
    expect((await problemOf(response)).detail).toContain(`${64 * 1024 * 1024} bytes`)
    await unchanged(t, admin)
  })

  test('a model of more than 1 000 000 tree nodes is a 413 naming them', async () => {
    await using t = await testApp()
    const admin = await t.key(undefined, ['admin', 'predict'])
    const json = stumps(1)
    const many = 1_000_001
    json.trees[0] = { ...json.trees[0]!, feature: new Array(many).fill(-1), threshold: new Array(many).fill(0), left: new Array(many).fill(-1), right: new Array(many).fill(-1), value: new Array(many).fill(0) }
    const response = await t.request('/v1/models/seed-linear', { method: 'PUT', key: admin, json })
    expect(response.status).toBe(413)
    expect((await problemOf(response)).detail).toBe('model seed-linear holds 1000001 tree nodes; at most 1000000 are allowed')
    await unchanged(t, admin)
  })
})
