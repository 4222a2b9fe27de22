// Predictions over the registry's models, for the v1 and v2 routes: the net runs synchronously on
// the version looked up at the start, so a swap never lands between lookup and outputs.
import { HttpError, invalid } from '../platform/errors'
import { KernelMemoryError } from './kernel'
import type { LoadedModel } from './loaded-model'
import type { InferenceMetrics } from './metrics'
import { type InferenceModel, isModelName, type KServeModel, MAX_ROWS, MODEL_NAME_RULE, ModelLimitError } from './model'
import { type Label, ModelFileError } from './model-file'
import { ModelTooLargeError } from './model-trees'
import { INPUT_NAME, labelType, PREDICT, PREDICT_PROBA, predictionsOf, requestedOutputs, tensorsOf } from './outputs'
import type { ModelRegistry } from './registry'
import { fillFlat, fillRows, run, writeNamed } from './rows'

/** The model `POST /v1/predict` (the seed's call) is served by. */
export const SEED_MODEL = 'seed-linear'

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
    if (!isModelName(name)) throw invalid('params.name', `must match ${MODEL_NAME_RULE} (it becomes the file name)`)
    try {
      const { model, created } = await this.registry.put(name, raw)
      return { summary: model.summary, created }
    } catch (error) {
      // 422, not 413, past MAX_MODELS: the body is fine; it is the registry that is full.
      if (error instanceof ModelLimitError) throw new HttpError(422, error.message)
      if (error instanceof KernelMemoryError) throw new HttpError(413, `model ${name} ${error.message}`)
      if (error instanceof ModelTooLargeError) throw new HttpError(413, `model ${name} ${error.message}`)
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

  metadata(name: string): KServeModel.Metadata {
    const model = this.model(name)
    const outputs: KServeModel.Metadata['outputs'] = [{ name: PREDICT, datatype: model.classes ? labelType(model.classes) : 'FP64', shape: [-1, 1] }]
    if (model.classes) outputs.push({ name: PREDICT_PROBA, datatype: 'FP64', shape: [-1, model.classes.length] })
    return {
      name: model.name,
      versions: [model.version],
      platform: model.source === 'xgboost_json' ? 'xgboost_json' : model.kind === 'trees' ? 'taskmesh_trees' : 'taskmesh_wasm',
      inputs: [{ name: INPUT_NAME, datatype: 'FP64', shape: [-1, model.features.length], parameters: { features: [...model.features] } }],
      outputs,
      parameters: { kind: model.kind, ...(model.kind === 'trees' ? { trees: model.summary.trees, nodes: model.summary.nodes, outputs: model.summary.outputs } : {}) },
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
      : run(model, rows, (problem) => `body.inputs[0].data${problem.at}`, fillFlat(data, n, model.missing))
    this.metrics.observe(model.name, rows)
    return {
      model_name: model.name,
      model_version: model.version,
      ...(body.id === undefined ? {} : { id: body.id }),
      outputs: tensorsOf(model, outputs, rows, wanted),
    }
  }
}
