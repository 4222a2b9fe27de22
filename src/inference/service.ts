// Predictions over the registry's models: rows are checked in one pass that writes them straight
// into the kernel's input (no intermediate arrays), the net runs synchronously on the version
// looked up at the start, and the outputs become v1 predictions or v2 tensors.
import { HttpError, invalid } from '../platform/errors'
import type { Telemetry } from '../platform/observability'
import type { Fill, Label } from './kernel'
import { PredictionMetrics } from './metrics'
import { type InferenceModel, type KServeModel, MAX_ROWS, MODEL_NAME, modelNamePattern } from './model'
import { type LoadedModel, ModelFileError, type ModelRegistry } from './registry'

/** The model `POST /v1/predict` (the seed's call) is served by. */
export const SEED_MODEL = 'seed-linear'
export const INPUT_NAME = 'input-0'
/** Output names as the scikit-learn runtimes of the Open Inference Protocol (MLServer) call them. */
export const PREDICT = 'predict'
export const PREDICT_PROBA = 'predict_proba'

/** What the service reports to Prometheus. */
export class InferenceMetrics {
  private readonly predictions: PredictionMetrics

  constructor(telemetry: Telemetry, registry: ModelRegistry) {
    this.predictions = new PredictionMetrics(telemetry.registry)
    telemetry.gauge('models_loaded', 'Models being served', () => registry.size)
    telemetry.gauge('model_files_rejected', 'Files in MODELS_DIR that failed validation', () => registry.rejections().length)
  }

  observe(model: string, rows: number): void {
    this.predictions.observe(model, rows)
  }
}

// --- rows ---------------------------------------------------------------------------------------

/** A bad value inside row `row` of a batch; `at` is its path within the row (`[2]`, `.bmi`, or empty). */
class RowProblem {
  row = 0
  constructor(readonly at: string, readonly message: string) {}
}

const featureList = (model: LoadedModel) => {
  const shown = model.features.slice(0, 12).join(', ')
  return model.features.length > 12 ? `${shown}, … (${model.features.length} features)` : shown
}

/** Says what is wrong with a value that is not a finite number. JSON cannot say NaN, but 1e400 parses as Infinity. */
function check(value: unknown, at: string): number {
  if (typeof value !== 'number') throw new RowProblem(at, 'must be a number')
  throw new RowProblem(at, 'must be a finite number')
}

// In the writers below, `x - x === 0` holds for every finite number and fails for ±Infinity and NaN;
// check() runs (and builds its path) only for a bad value.

function writePositional(row: readonly unknown[], input: Float64Array, offset: number, model: LoadedModel): void {
  const n = model.features.length
  if (row.length !== n) throw new RowProblem('', `has ${row.length} values, expected ${n} (${featureList(model)})`)
  for (let i = 0; i < n; i++) {
    const value = row[i]
    input[offset + i] = typeof value === 'number' && value - value === 0 ? value : check(value, `[${i}]`)
  }
}

function writeNamed(row: Record<string, unknown>, input: Float64Array, offset: number, model: LoadedModel): void {
  const columns = model.columns
  let seen = 0
  for (const key in row) {
    const column = columns.get(key)
    if (column === undefined) throw new RowProblem(`.${key}`, `is not a feature of ${model.name} (${featureList(model)})`)
    const value = row[key]
    input[offset + column] = typeof value === 'number' && value - value === 0 ? value : check(value, `.${key}`)
    seen++
  }
  // Keys are unique and all known, so fewer than n means one is missing.
  if (seen !== model.features.length) {
    const missing = model.features.find((feature) => !Object.hasOwn(row, feature))!
    throw new RowProblem(`.${missing}`, 'is missing')
  }
}

/** A Fill over rows that are each positional (an array) or named (an object), as `instances` and nested v2 data hold them. */
function fillRows(rows: readonly unknown[], model: LoadedModel, arraysOnly = false): Fill {
  const n = model.features.length
  return (input, first, count) => {
    let r = 0
    try {
      for (; r < count; r++) {
        const row = rows[first + r]
        if (Array.isArray(row)) writePositional(row, input, r * n, model)
        else if (typeof row === 'object' && row !== null && !arraysOnly) writeNamed(row as Record<string, unknown>, input, r * n, model)
        else throw new RowProblem('', `must be an array of ${n} numbers${arraysOnly ? '' : ' or an object of feature values'}`)
      }
    } catch (error) {
      if (error instanceof RowProblem) error.row = first + r
      throw error
    }
  }
}

/** Runs `fill`'s rows through the model's net; a RowProblem becomes a 422 naming `field(problem)`. */
function run(model: LoadedModel, rows: number, field: (problem: RowProblem) => string, fill: Fill): Float64Array {
  let outputs: Float64Array
  try {
    outputs = model.net.run(rows, fill)
  } catch (error) {
    if (!(error instanceof RowProblem)) throw error
    throw invalid(field(error), error.message)
  }
  const width = outputs.length / rows
  for (let i = 0; i < outputs.length; i++) {
    const value = outputs[i]!
    if (value - value !== 0) {
      throw invalid('body', `the prediction for row ${Math.floor(i / width)} is not a finite number: its inputs are out of the range this model can compute`)
    }
  }
  return outputs
}

// --- the service --------------------------------------------------------------------------------

const notFound = (name: string) => new HttpError(404, `no model named ${JSON.stringify(name)} is loaded`)

export class InferenceService {
  constructor(private readonly registry: ModelRegistry, private readonly metrics: InferenceMetrics) {}

  /** The model, or 404. */
  model(name: string): LoadedModel {
    const model = this.registry.get(name)
    if (!model) throw notFound(name)
    return model
  }

  list(): InferenceModel.List {
    return { items: this.registry.list().map((model) => model.summary), rejected: this.registry.rejections() }
  }

  async upload(name: string, raw: unknown): Promise<{ summary: InferenceModel.Summary; created: boolean }> {
    if (!modelNamePattern.test(name)) throw invalid('params.name', `must match ${MODEL_NAME} (it becomes the file name)`)
    try {
      const { model, created } = await this.registry.put(name, raw)
      return { summary: model.summary, created }
    } catch (error) {
      if (!(error instanceof ModelFileError)) throw error
      throw invalid(error.path ? `body.${error.path}` : 'body', error.detail)
    }
  }

  async remove(name: string): Promise<void> {
    if (!(await this.registry.remove(name))) throw notFound(name)
  }

  /** POST /v1/models/{name}/predict. Synchronous from lookup to outputs: see registry.ts. */
  predict(name: string, body: InferenceModel.PredictBody): InferenceModel.Prediction {
    const model = this.model(name)
    const { features, instances } = body
    let outputs: Float64Array
    let rows: number
    if (features !== undefined) {
      if (instances !== undefined) throw invalid('body', 'give either features (one row) or instances (a batch), not both')
      rows = 1
      outputs = run(model, 1, (problem) => `body.features${problem.at}`, (input) => writeNamed(features, input, 0, model))
    } else {
      if (instances === undefined) throw invalid('body', 'give features (one row by name) or instances (a batch of rows)')
      rows = instances.length
      if (rows === 0) throw invalid('body.instances', 'must hold at least one row')
      if (rows > MAX_ROWS) throw invalid('body.instances', `holds ${rows} rows; at most ${MAX_ROWS} are allowed per request`)
      outputs = run(model, rows, (problem) => `body.instances[${problem.row}]${problem.at}`, fillRows(instances, model))
    }
    this.metrics.observe(model.name, rows)
    return { model: model.name, version: model.version, predictions: predictionsOf(model, outputs, rows) }
  }

  /** POST /v1/predict: the seed's call, by feature name, with feature3 defaulting to 0. */
  predictSeed(body: InferenceModel.SeedBody): { prediction: number | Label } {
    const model = this.registry.get(SEED_MODEL)
    if (!model) throw new HttpError(503, `the model ${SEED_MODEL} is not loaded`)
    const row = { feature1: body.feature1, feature2: body.feature2, feature3: body.feature3 ?? 0 }
    const outputs = run(model, 1, (problem) => `body${problem.at}`, (input) => writeNamed(row, input, 0, model))
    this.metrics.observe(model.name, 1)
    const prediction = predictionsOf(model, outputs, 1)[0]!
    return { prediction: typeof prediction === 'number' ? prediction : prediction.label }
  }

  // --- Open Inference Protocol (v2) --------------------------------------------------------------

  metadata(name: string): KServeModel.Metadata {
    const model = this.model(name)
    const outputs: KServeModel.Metadata['outputs'] = [{ name: PREDICT, datatype: model.classes ? labelType(model.classes) : 'FP64', shape: [-1, 1] }]
    if (model.classes) outputs.push({ name: PREDICT_PROBA, datatype: 'FP64', shape: [-1, model.classes.length] })
    return {
      name: model.name,
      versions: [model.version],
      platform: 'taskmesh_wasm',
      inputs: [{ name: INPUT_NAME, datatype: 'FP64', shape: [-1, model.features.length], parameters: { features: [...model.features] } }],
      outputs,
    }
  }

  /** 200 when loaded; 503 when only a rejected file exists; 404 otherwise. */
  modelReady(name: string): { name: string; ready: boolean } {
    if (this.registry.get(name)) return { name, ready: true }
    const rejected = this.registry.rejection(name)
    if (rejected) throw new HttpError(503, `model ${JSON.stringify(name)} is not ready: ${rejected.message}`)
    throw notFound(name)
  }

  /** POST /v2/models/{name}/infer: one FP64 input tensor [rows, features], flat or nested. */
  infer(name: string, body: KServeModel.InferBody): KServeModel.InferResponse {
    const model = this.model(name)
    const wanted = requestedOutputs(model, body.outputs)
    if (body.inputs.length !== 1) {
      throw invalid('body.inputs', `has ${body.inputs.length} tensors; the model takes one, ${INPUT_NAME} [rows, ${model.features.length}]`)
    }
    const tensor = body.inputs[0]!
    if (tensor.datatype !== 'FP64' && tensor.datatype !== 'FP32') throw invalid('body.inputs[0].datatype', 'must be FP64 (or FP32)')
    const n = model.features.length
    const shape = tensor.shape
    const rows = shape[0]
    if (shape.length !== 2 || shape[1] !== n || typeof rows !== 'number' || !Number.isInteger(rows) || rows < 1 || rows > MAX_ROWS) {
      throw invalid('body.inputs[0].shape', `must be [rows, ${n}] with rows from 1 to ${MAX_ROWS}`)
    }
    const data = tensor.data
    const nested = Array.isArray(data[0])
    const expected = nested ? rows : rows * n
    if (data.length !== expected) {
      throw invalid('body.inputs[0].data', `has ${data.length} ${nested ? 'rows' : 'values'}; shape [${rows}, ${n}] needs ${expected}`)
    }
    const outputs = nested
      ? run(model, rows, (problem) => `body.inputs[0].data[${problem.row}]${problem.at}`, fillRows(data, model, true))
      : run(model, rows, (problem) => `body.inputs[0].data${problem.at}`, (input, first, count) => {
        const start = first * n
        const end = start + count * n
        for (let i = start; i < end; i++) {
          const value = data[i]
          input[i - start] = typeof value === 'number' && value - value === 0 ? value : check(value, `[${i}]`)
        }
      })
    this.metrics.observe(model.name, rows)
    return {
      model_name: model.name,
      model_version: model.version,
      ...(body.id === undefined ? {} : { id: body.id }),
      outputs: tensorsOf(model, outputs, rows, wanted),
    }
  }
}

/** Probabilities (rows × classes, row-major) and the argmax label of each row; one sigmoid output p is [1 - p, p]. */
function classify(classes: readonly Label[], outputs: Float64Array, rows: number): { probabilities: number[]; labels: Label[] } {
  const c = classes.length
  const width = outputs.length / rows
  const probabilities = new Array<number>(rows * c)
  const labels = new Array<Label>(rows)
  for (let r = 0; r < rows; r++) {
    if (width === 1) {
      probabilities[r * 2] = 1 - outputs[r]!
      probabilities[r * 2 + 1] = outputs[r]!
    } else {
      for (let j = 0; j < c; j++) probabilities[r * c + j] = outputs[r * c + j]!
    }
    let best = 0
    for (let j = 1; j < c; j++) if (probabilities[r * c + j]! > probabilities[r * c + best]!) best = j
    labels[r] = classes[best]!
  }
  return { probabilities, labels }
}

function predictionsOf(model: LoadedModel, outputs: Float64Array, rows: number): InferenceModel.Prediction['predictions'] {
  const classes = model.classes
  if (!classes) return rows === 1 ? [outputs[0]!] : Array.from(outputs)
  const { probabilities, labels } = classify(classes, outputs, rows)
  const keys = model.labelKeys
  return labels.map((label, r) => {
    const byLabel: Record<string, number> = {}
    for (let j = 0; j < keys.length; j++) byLabel[keys[j]!] = probabilities[r * keys.length + j]!
    return { label, probabilities: byLabel }
  })
}

function labelType(classes: readonly Label[]): string {
  if (classes.some((label) => typeof label === 'string')) return 'BYTES'
  return classes.every((label) => Number.isInteger(label)) ? 'INT64' : 'FP64'
}

function requestedOutputs(model: LoadedModel, outputs: KServeModel.InferBody['outputs']): Set<string> {
  const known = model.classes ? [PREDICT, PREDICT_PROBA] : [PREDICT]
  if (outputs === undefined) return new Set(known)
  outputs.forEach((output, i) => {
    if (!known.includes(output.name)) throw invalid(`body.outputs[${i}].name`, `must be one of ${known.join(', ')}`)
  })
  return new Set(outputs.map((output) => output.name))
}

function tensorsOf(model: LoadedModel, outputs: Float64Array, rows: number, wanted: Set<string>): KServeModel.Output[] {
  const classes = model.classes
  if (!classes) return [{ name: PREDICT, datatype: 'FP64', shape: [rows, 1], data: Array.from(outputs) }]
  const { probabilities, labels } = classify(classes, outputs, rows)
  const tensors: KServeModel.Output[] = []
  if (wanted.has(PREDICT)) tensors.push({ name: PREDICT, datatype: labelType(classes), shape: [rows, 1], data: labels })
  if (wanted.has(PREDICT_PROBA)) tensors.push({ name: PREDICT_PROBA, datatype: 'FP64', shape: [rows, classes.length], data: probabilities })
  return tensors
}
