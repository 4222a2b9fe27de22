// POST /v1/models/{name}/predict in the least-work reference: the model files the service serves
// (MODELS_DIR), checked by the service's parseModel and compiled into the same WASM Kernel; per
// request, parse the JSON, write the rows into the kernel's input (numbers checked on the way),
// run the net, stringify { model, version, predictions }. Regressors only: the predict scenarios
// use no classifier, so files with classes are left out. Boosters (NAME.xgb.json) are converted as
// the service converts them.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type CompiledNet, type Fill, Kernel } from '../src/inference/kernel.ts'
import { fromXgboost } from '../src/inference/formats/xgboost.ts'
import { modelLayers, parseModel } from '../src/inference/model-file.ts'
import { bodyOf, json, problem } from './least-work-http.ts'
import type { OwnerOf } from './least-work-tasks.ts'

interface Served {
  name: string
  version: string
  features: readonly string[]
  /** Feature name → column. */
  columns: ReadonlyMap<string, number>
  net: CompiledNet
}

class BadRow extends Error {}

/** Every regressor in `dir`, compiled into one kernel. */
export async function loadModels(dir: string): Promise<Map<string, Served>> {
  const kernel = await Kernel.load()
  const models = new Map<string, Served>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const booster = file.endsWith('.xgb.json')
    const name = file.slice(0, -(booster ? '.xgb.json' : '.json').length)
    const raw: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'))
    const model = parseModel(booster ? fromXgboost(raw, name, '1') : raw, name)
    if (model.kind !== 'linear' && !((model.kind === 'mlp' || model.kind === 'trees') && model.classes === undefined)) continue
    const columns = new Map(model.features.map((feature, i) => [feature, i]))
    const net = model.kind === 'trees' ? kernel.compileTrees(model, model.features.length) : kernel.compile(modelLayers(model))
    models.set(name, { name, version: model.version, features: model.features, columns, net })
  }
  return models
}

const finite = (value: unknown): number => {
  if (typeof value === 'number' && value - value === 0) return value
  throw new BadRow('every feature value must be a finite number')
}

/** A Fill over rows given as arrays of n values or objects of feature values. */
function fillRows(rows: readonly unknown[], model: Served): Fill {
  const n = model.features.length
  return (input, first, count) => {
    for (let r = 0; r < count; r++) {
      const row = rows[first + r]
      const offset = r * n
      if (Array.isArray(row)) {
        if (row.length !== n) throw new BadRow(`a row has ${row.length} values, expected ${n}`)
        for (let i = 0; i < n; i++) input[offset + i] = finite(row[i])
      } else if (typeof row === 'object' && row !== null) {
        let seen = 0
        for (const key in row) {
          const column = model.columns.get(key)
          if (column === undefined) throw new BadRow(`${key} is not a feature of ${model.name}`)
          input[offset + column] = finite((row as Record<string, unknown>)[key])
          seen++
        }
        if (seen !== n) throw new BadRow(`a row names ${seen} of the ${n} features`)
      } else {
        throw new BadRow(`a row must be an array of ${n} numbers or an object of feature values`)
      }
    }
  }
}

export function predictRoutes(models: ReadonlyMap<string, Served>, ownerOf: OwnerOf) {
  async function predict(request: Bun.BunRequest<'/v1/models/:name/predict'>): Promise<Response> {
    if (ownerOf(request) === undefined) return problem(401, 'missing or unknown API key')
    const model = models.get(request.params.name)
    if (!model) return problem(404, `no model named ${JSON.stringify(request.params.name)} is loaded`)
    const body = (await bodyOf(request)) as { features?: unknown; instances?: unknown } | null
    const rows = body?.features !== undefined ? [body.features] : body?.instances
    if (!Array.isArray(rows) || rows.length === 0) return problem(422, 'give features (one row by name) or instances (a batch of rows)')
    let outputs: Float64Array
    try {
      outputs = model.net.run(rows.length, fillRows(rows, model))
    } catch (error) {
      if (error instanceof BadRow) return problem(422, error.message)
      throw error
    }
    // A loop, not Array.from (which walks a typed array through its iterator): the least work, as the service does it.
    const predictions = new Array<number>(outputs.length)
    for (let i = 0; i < outputs.length; i++) predictions[i] = outputs[i]!
    return json(JSON.stringify({ model: model.name, version: model.version, predictions }), 200)
  }
  return { '/v1/models/:name/predict': { POST: predict } }
}
