// Prediction bodies are built by the service and not re-checked per response (platform/unchecked.ts):
// here every kind of model the fixtures hold answers each prediction route, and each 200 body is
// checked against the schema /openapi.json declares for it.
import { describe, expect, test } from 'bun:test'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import { copyFileSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { copyModels, tempDir, testApp } from './helpers'

type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> }

const fixtures = join(import.meta.dir, 'fixtures')
/** Every fixture model, with the first rows of the inputs its library was asked about. */
function modelsDir(): { dir: string; models: Array<{ name: string; rows: unknown[][] }> } {
  const dir = copyModels(tempDir('taskmesh-responses-'))
  for (const folder of ['exported', 'trained']) {
    for (const file of readdirSync(join(fixtures, folder))) {
      if (file.endsWith('.json') && !file.endsWith('.expected.json')) copyFileSync(join(fixtures, folder, file), join(dir, file))
    }
  }
  const models = readdirSync(dir).filter((file) => file.endsWith('.json')).flatMap((file) => {
    const name = file.replace(/(\.xgb)?\.json$/, '')
    const expected = [join(fixtures, 'models'), join(fixtures, 'exported'), join(fixtures, 'trained')]
      .map((folder) => join(folder, `${name}.expected.json`))
      .find((path) => { try { readFileSync(path); return true } catch { return false } })
    if (!expected) return []
    const { inputs } = JSON.parse(readFileSync(expected, 'utf8')) as { inputs: unknown[][] }
    return [{ name, rows: inputs.slice(0, 3) }]
  })
  return { dir, models }
}

describe('prediction responses match the document', async () => {
  const { dir, models } = modelsDir()
  const t = await testApp({ MODELS_DIR: dir, RATE_LIMIT: 'off' })
  const key = await t.key('responses', ['predict'])
  const doc = (await (await t.request('/openapi.json')).json()) as Doc
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats(ajv)
  const schemaOf = (path: string) => ajv.compile(doc.paths[path]!.post!.responses['200']!.content!['application/json']!.schema)
  const predict = schemaOf('/v1/models/{name}/predict')
  const infer = schemaOf('/v2/models/{name}/infer')
  const seed = schemaOf('/v1/predict')

  test('the fixtures hold every kind of model', () => {
    expect(models.length).toBeGreaterThanOrEqual(20)
  })

  test.each(models.map((m) => [m.name, m] as const))('%s: predict (rows and by name) and infer', async (name, { rows }) => {
    const { features } = (await (await t.request(`/v1/models/${name}`, { key })).json()) as { features: string[] }
    const batch = await t.request(`/v1/models/${name}/predict`, { method: 'POST', key, json: { instances: rows } })
    expect(batch.status).toBe(200)
    const batchBody = await batch.json()
    expect(predict(batchBody), ajv.errorsText(predict.errors)).toBe(true)
    const one = Object.fromEntries(features.map((feature, i) => [feature, rows[0]![i]]))
    const single = await t.request(`/v1/models/${name}/predict`, { method: 'POST', key, json: { features: one } })
    expect(single.status).toBe(200)
    const singleBody = await single.json()
    expect(predict(singleBody), ajv.errorsText(predict.errors)).toBe(true)
    const inferred = await t.request(`/v2/models/${name}/infer`, {
      method: 'POST', key,
      json: { inputs: [{ name: 'input', shape: [rows.length, features.length], datatype: 'FP64', data: rows }] },
    })
    expect(inferred.status).toBe(200)
    const inferBody = await inferred.json()
    expect(infer(inferBody), ajv.errorsText(infer.errors)).toBe(true)
  })

  test('the seed call', async () => {
    const response = await t.request('/v1/predict', { method: 'POST', key, json: { feature1: 1, feature2: 2, feature3: 0.5 } })
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(seed(body), ajv.errorsText(seed.errors)).toBe(true)
  })
})
