// What a model file may hold, checked once and completely (shapes and values), and how a valid
// file becomes the dense layers the kernel runs. Every rule a file must meet lives here: the kernel
// trusts what this module hands it, guarding only its own memory.
import { ACTIVATIONS, type DenseLayer } from './kernel'
import { KINDS, type Kind } from './model'
import { parseTrees, TREES_FIELDS, type TreesSpec } from './model-trees'

export type Label = string | number

export interface LinearModel {
  readonly kind: 'linear'
  readonly coef: readonly number[]
  readonly intercept: number
}

export interface LogisticModel {
  readonly kind: 'logistic'
  /** [k][n]: one row of coefficients per score. */
  readonly coef: readonly (readonly number[])[]
  readonly intercept: readonly number[]
  readonly classes: readonly Label[]
}

export interface MlpModel {
  readonly kind: 'mlp'
  readonly layers: readonly DenseLayer[]
  /** Present for classifiers, absent for regressors. */
  readonly classes?: readonly Label[]
}

export interface TreesModel extends TreesSpec {
  /** Present for classifiers, absent for regressors. */
  readonly classes?: readonly Label[]
}

/** The kinds that run as dense layers. */
export type DenseSpec = LinearModel | LogisticModel | MlpModel
export type ModelSpec = DenseSpec | TreesModel

/** A model file after validation: what the kernel runs plus what describes it. */
export type ModelFile = ModelSpec & {
  readonly name: string
  readonly version: string
  readonly description?: string
  readonly features: readonly string[]
}

/** A model file that cannot be served; `path` locates the bad value (`layers[1].bias[3]`), empty for the whole file. */
export class ModelFileError extends Error {
  override name = 'ModelFileError'
  constructor(readonly path: string, readonly detail: string) {
    super(path ? `${path}: ${detail}` : detail)
  }
}

type Json = Record<string, unknown>

const FIELDS: Record<Kind, readonly string[]> = {
  linear: ['name', 'version', 'kind', 'description', 'features', 'coef', 'intercept'],
  logistic: ['name', 'version', 'kind', 'description', 'features', 'coef', 'intercept', 'classes'],
  mlp: ['name', 'version', 'kind', 'description', 'features', 'layers', 'classes'],
  trees: ['name', 'version', 'kind', 'description', 'features', 'classes', ...TREES_FIELDS],
}

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const at = (path: string, key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key)

function fail(path: string, message: string): never {
  throw new ModelFileError(path, message)
}

function array(value: unknown, path: string, length?: number, what = 'values'): unknown[] {
  if (!Array.isArray(value)) fail(path, length === undefined ? 'must be an array' : `must be an array of ${length} ${what}`)
  if (length !== undefined && value.length !== length) fail(path, `has ${value.length} ${what}, expected ${length}`)
  return value
}

function finite(value: unknown, path: string): number {
  if (typeof value !== 'number') fail(path, 'must be a number')
  if (!Number.isFinite(value)) fail(path, 'must be a finite number')
  return value
}

function numbers(value: unknown, path: string, length?: number): number[] {
  const values = array(value, path, length)
  if (values.length === 0) fail(path, 'must not be empty')
  values.forEach((v, i) => finite(v, at(path, i)))
  return values as number[]
}

function matrix(value: unknown, path: string, rows: number | undefined, cols: number, what: string): number[][] {
  const values = array(value, path, rows, what)
  if (values.length === 0) fail(path, 'must not be empty')
  values.forEach((row, i) => numbers(row, at(path, i), cols))
  return values as number[][]
}

/**
 * Most classes a classifier may have: every prediction answers one probability per class, so a
 * 10 000-row batch of a model with more would build (and send) tens of millions of values.
 */
export const MAX_CLASSES = 1000

function labels(value: unknown): Label[] {
  const classes = array(value, 'classes')
  if (classes.length < 2) fail('classes', 'must name at least two classes')
  if (classes.length > MAX_CLASSES) fail('classes', `names ${classes.length} classes; at most ${MAX_CLASSES} are allowed`)
  const seen = new Set<string>()
  classes.forEach((label, i) => {
    const ok = (typeof label === 'string' && label !== '') || (typeof label === 'number' && Number.isFinite(label))
    if (!ok) fail(at('classes', i), 'must be a non-empty string or a finite number')
    // Probabilities are keyed by the label as a string, so 1 and "1" would collide.
    if (seen.has(String(label))) fail(at('classes', i), `repeats the label ${JSON.stringify(label)}`)
    seen.add(String(label))
  })
  return classes as Label[]
}

/** The text of a model file as JSON, or a ModelFileError saying why it is not. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new ModelFileError('', `is not valid JSON: ${(error as Error).message}`)
  }
}

/** Checks a parsed model file completely (shapes and values) and returns it typed; `name` is what it must be called. */
export function parseModel(raw: unknown, name: string): ModelFile {
  if (!isObject(raw)) fail('', 'must be a JSON object')
  const kind = raw.kind
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) fail('kind', `must be one of ${KINDS.join(', ')}`)
  const fields = FIELDS[kind as Kind]
  for (const key of Object.keys(raw)) {
    if (!fields.includes(key)) fail(key, `is not a field of a ${kind} model (${fields.join(', ')})`)
  }
  if (raw.name !== name) fail('name', `must be ${JSON.stringify(name)}, the name of the file and URL`)
  if (typeof raw.version !== 'string' || raw.version.trim() === '' || raw.version.length > 128) fail('version', 'must be a non-empty string of at most 128 characters')
  if (raw.description !== undefined && typeof raw.description !== 'string') fail('description', 'must be a string')
  const features = array(raw.features, 'features')
  if (features.length === 0) fail('features', 'must name at least one feature')
  const seen = new Set<string>()
  features.forEach((feature, i) => {
    if (typeof feature !== 'string' || feature === '') fail(at('features', i), 'must be a non-empty string')
    if (seen.has(feature)) fail(at('features', i), `repeats the feature ${JSON.stringify(feature)}`)
    seen.add(feature)
  })
  const n = features.length
  // Field order as in the reference files, since an upload is written back in this order.
  const head = <K extends Kind>(kind: K) => ({
    name,
    version: raw.version as string,
    kind,
    ...(raw.description === undefined ? {} : { description: raw.description as string }),
    features: features as string[],
  })

  switch (kind as Kind) {
    case 'linear':
      return { ...head('linear'), coef: numbers(raw.coef, 'coef', n), intercept: finite(raw.intercept, 'intercept') }
    case 'logistic': {
      const classes = labels(raw.classes)
      const c = classes.length
      const k = c === 2 ? undefined : c
      const coef = matrix(raw.coef, 'coef', k, n, 'rows')
      if (coef.length !== c && !(coef.length === 1 && c === 2)) fail('coef', `has ${coef.length} rows for ${c} classes: expected ${c === 2 ? '1 or 2' : c}`)
      const intercept = numbers(raw.intercept, 'intercept', coef.length)
      return { ...head('logistic'), classes, coef, intercept }
    }
    case 'mlp': {
      const classes = raw.classes === undefined ? undefined : labels(raw.classes)
      const layers = parseLayers(raw.layers, n, classes)
      return { ...head('mlp'), ...(classes ? { classes } : {}), layers }
    }
    case 'trees': {
      const classes = raw.classes === undefined ? undefined : labels(raw.classes)
      const { kind: _, ...spec } = parseTrees(raw, n, classes?.length, fail)
      return { ...head('trees'), ...(classes ? { classes } : {}), ...spec }
    }
  }
}

function parseLayers(value: unknown, nFeatures: number, classes: Label[] | undefined): DenseLayer[] {
  const list = array(value, 'layers')
  if (list.length === 0) fail('layers', 'must hold at least one layer')
  let nIn = nFeatures
  const layers = list.map((layer, k): DenseLayer => {
    const path = at('layers', k)
    if (!isObject(layer)) fail(path, 'must be an object { weights, bias, activation }')
    for (const key of Object.keys(layer)) {
      if (key !== 'weights' && key !== 'bias' && key !== 'activation') fail(at(path, key), 'is not a field of a layer (weights, bias, activation)')
    }
    const bias = numbers(layer.bias, at(path, 'bias'))
    const source = k === 0 ? 'features' : `outputs of layers[${k - 1}]`
    const weightsPath = at(path, 'weights')
    if (Array.isArray(layer.weights) && layer.weights.length !== nIn) {
      fail(weightsPath, `has ${layer.weights.length} rows, expected ${nIn} (one per ${source})`)
    }
    const weights = matrix(layer.weights, weightsPath, nIn, bias.length, 'rows')
    if (typeof layer.activation !== 'string' || !(ACTIVATIONS as readonly string[]).includes(layer.activation)) {
      fail(at(path, 'activation'), `must be one of ${ACTIVATIONS.join(', ')}`)
    }
    nIn = bias.length
    return { weights, bias, activation: layer.activation as DenseLayer['activation'] }
  })
  const last = layers.at(-1)!
  const lastPath = at('layers', layers.length - 1)
  const nOut = last.bias.length
  if (!classes) {
    if (nOut !== 1) fail(at(lastPath, 'bias'), `has ${nOut} outputs; a regressor (no classes) has 1`)
  } else if (nOut === 1 && classes.length === 2) {
    if (last.activation !== 'sigmoid') fail(at(lastPath, 'activation'), 'must be sigmoid: one output for two classes is the probability of the second')
  } else if (nOut === classes.length) {
    if (last.activation !== 'softmax') fail(at(lastPath, 'activation'), 'must be softmax: one output per class is a probability distribution')
  } else {
    fail(at(lastPath, 'bias'), `has ${nOut} outputs for ${classes.length} classes: expected ${classes.length}${classes.length === 2 ? ' or 1' : ''}`)
  }
  return layers
}

// The conversions below take a file parseModel accepted, so they check nothing again.

/** y = x·coef + intercept as one identity layer. */
export function linearLayers(model: LinearModel): DenseLayer[] {
  return [{ weights: model.coef.map((c) => [c]), bias: [model.intercept], activation: 'identity' }]
}

/** One score per row of `coef`: sigmoid for the binary case (one row, two classes), else softmax. */
export function logisticLayers(model: LogisticModel): DenseLayer[] {
  const binary = model.coef.length === 1 && model.classes.length === 2
  const n = model.coef[0]!.length
  const weights = Array.from({ length: n }, (_, i) => model.coef.map((row) => row[i]!))
  return [{ weights, bias: model.intercept, activation: binary ? 'sigmoid' : 'softmax' }]
}

/** The file's layers as they are. */
export function mlpLayers(model: MlpModel): DenseLayer[] {
  return [...model.layers]
}

export function modelLayers(model: DenseSpec): DenseLayer[] {
  switch (model.kind) {
    case 'linear': return linearLayers(model)
    case 'logistic': return logisticLayers(model)
    case 'mlp': return mlpLayers(model)
  }
}
