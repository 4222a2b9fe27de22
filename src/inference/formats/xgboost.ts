// XGBoost boosters as `save_model("NAME.json")` writes them (XGBoost ≥ 1.7, gbtree), turned into
// this service's `trees` model file: float32 comparisons (x < threshold) and float32 sums, missing
// values following each node's default direction, the objective's link, and the base score as a
// margin. The result still goes through parseModel, which checks every index.
import { MAX_CLASSES, ModelFileError } from '../model-file'
import { MAX_TREE_NODES, ModelTooLargeError } from '../model-trees'

/** Most features a booster may declare (num_feature): its names and every row are sized by it. */
export const MAX_BOOSTER_FEATURES = 100_000

type Json = Record<string, unknown>

const OBJECTIVES = ['reg:squarederror', 'reg:logistic', 'binary:logistic', 'multi:softprob', 'multi:softmax'] as const
type Objective = (typeof OBJECTIVES)[number]

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

function fail(path: string, message: string): never {
  throw new ModelFileError(path, message)
}

/** True for a parsed body or file that is an XGBoost booster rather than a model file of this service. */
export const isXgboost = (raw: unknown): boolean => isObject(raw) && isObject(raw.learner)

function field(parent: Json, key: string, path: string): Json {
  const value = parent[key]
  if (!isObject(value)) fail(`${path}.${key}`, 'must be an object (is this a booster saved by XGBoost ≥ 1.7 with save_model to .json?)')
  return value
}

function list(parent: Json, key: string, path: string, length?: number): unknown[] {
  const value = parent[key]
  if (!Array.isArray(value)) fail(`${path}.${key}`, 'must be an array')
  if (length !== undefined && value.length !== length) fail(`${path}.${key}`, `has ${value.length} values, expected ${length} (one per node)`)
  return value
}

/** A number XGBoost writes as a string ("5E-1") or, in some versions, as a number; never a blank string. */
function numeric(value: unknown, path: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(path, 'must be a finite number')
  return n
}

/** A whole number from `min` to `max`, checked before anything is sized by it. */
function count(value: unknown, path: string, min: number, max: number, why: string): number {
  const n = numeric(value, path)
  if (!Number.isInteger(n) || n < min || n > max) fail(path, `is ${JSON.stringify(value)}; must be a whole number from ${min} to ${max} ${why}`)
  return n
}

/** base_score: "x" (XGBoost 1.x), "[x]" (2.x) or "[a,b,…]" (one per output), as k numbers. */
function baseScores(value: unknown, k: number, path: string): number[] {
  const text = typeof value === 'string' ? value.trim() : value
  if (typeof text !== 'string' || !text.startsWith('[')) return new Array<number>(k).fill(numeric(value, path))
  const inner = text.endsWith(']') ? text.slice(1, -1) : ''
  const parts = inner.trim() === '' ? [] : inner.split(',')
  if (parts.length !== 1 && parts.length !== k) fail(path, `is ${JSON.stringify(value)}; expected one number or ${k} in [ ]`)
  const scores = parts.map((part) => numeric(part, path))
  return parts.length === k ? scores : new Array<number>(k).fill(scores[0]!)
}

/**
 * The model file (unchecked, for parseModel) of booster `raw` served as `name` at `version`.
 * Classes are "0" … "k-1"; features the booster's feature_names, else f0, f1, ….
 * Whatever is wrong with a booster is a ModelFileError (or ModelTooLargeError), never another error.
 */
export function fromXgboost(raw: unknown, name: string, version: string): Json {
  try {
    return convert(raw, name, version)
  } catch (error) {
    if (error instanceof ModelFileError || error instanceof ModelTooLargeError) throw error
    throw new ModelFileError('learner', `could not be read as an XGBoost booster (${(error as Error).message})`)
  }
}

function convert(raw: unknown, name: string, version: string): Json {
  if (!isXgboost(raw)) fail('learner', 'is missing: not an XGBoost booster')
  const learner = (raw as Json).learner as Json
  const param = field(learner, 'learner_model_param', 'learner')
  const objective = field(learner, 'objective', 'learner').name
  if (typeof objective !== 'string' || !(OBJECTIVES as readonly string[]).includes(objective)) {
    fail('learner.objective.name', `is ${JSON.stringify(objective)}; the objectives served are ${OBJECTIVES.join(', ')}`)
  }
  const p = 'learner.learner_model_param'
  if (param.num_target !== undefined && numeric(param.num_target, `${p}.num_target`) !== 1) {
    fail(`${p}.num_target`, `is ${JSON.stringify(param.num_target)}; only boosters of one target are served (multi-output models are not)`)
  }
  const booster = field(learner, 'gradient_booster', 'learner')
  if (booster.name !== 'gbtree') fail('learner.gradient_booster.name', `is ${JSON.stringify(booster.name)}; only gbtree boosters are served`)
  const model = field(booster, 'model', 'learner.gradient_booster')
  const path = 'learner.gradient_booster.model'
  const trees = list(model, 'trees', path)
  const info = list(model, 'tree_info', path, trees.length)
  let nodes = 0
  for (const tree of trees) nodes += isObject(tree) && Array.isArray(tree.left_children) ? tree.left_children.length : 0
  if (nodes > MAX_TREE_NODES) throw new ModelTooLargeError(nodes)

  const nFeatures = count(param.num_feature, `${p}.num_feature`, 1, MAX_BOOSTER_FEATURES, '(MAX_BOOSTER_FEATURES)')
  const names = learner.feature_names
  if (Array.isArray(names) && names.length > 0 && names.length !== nFeatures) {
    fail('learner.feature_names', `has ${names.length} names; num_feature is ${nFeatures}`)
  }
  const features = Array.isArray(names) && names.length > 0 ? names : Array.from({ length: nFeatures }, (_, i) => `f${i}`)
  const multi = objective.startsWith('multi:')
  const k = multi ? count(param.num_class, `${p}.num_class`, 2, MAX_CLASSES, 'for a multi: objective (MAX_CLASSES)') : 1
  const scores = baseScores(param.base_score, k, `${p}.base_score`)
  const logistic = objective === 'reg:logistic' || objective === 'binary:logistic'
  if (logistic && !scores.every((score) => score > 0 && score < 1)) fail(`${p}.base_score`, 'must be a probability strictly between 0 and 1 for a logistic objective')
  // A logistic objective saves its base score as a probability; the trees add to its margin.
  const base = scores.map((score) => (logistic ? Math.log(score / (1 - score)) : score))

  return {
    name,
    version,
    kind: 'trees',
    description: `XGBoost booster (${objective as Objective}, ${trees.length} trees)`,
    features,
    ...(objective === 'binary:logistic' ? { classes: ['0', '1'] } : multi ? { classes: Array.from({ length: k }, (_, i) => String(i)) } : {}),
    outputs: k,
    comparison: 'lt32',
    accumulate: 'f32',
    aggregate: 'sum',
    base,
    link: multi ? 'softmax' : logistic ? 'sigmoid' : 'identity',
    trees: trees.map((tree, t) => convertTree(tree, `${path}.trees[${t}]`, info[t], `${path}.tree_info[${t}]`)),
  }
}

function convertTree(raw: unknown, path: string, output: unknown, outputPath: string): Json {
  if (!isObject(raw)) fail(path, 'must be an object')
  if (!Number.isInteger(output)) fail(outputPath, 'must be an integer (the class the tree scores)')
  const leafVector = isObject(raw.tree_param) ? raw.tree_param.size_leaf_vector : undefined
  if (leafVector !== undefined && numeric(leafVector, `${path}.tree_param.size_leaf_vector`) > 1) {
    fail(`${path}.tree_param.size_leaf_vector`, `is ${JSON.stringify(leafVector)}; trees with vector leaves (multi-output trees) are not served`)
  }
  const left = list(raw, 'left_children', path)
  const m = left.length
  const right = list(raw, 'right_children', path, m)
  const indices = list(raw, 'split_indices', path, m)
  const conditions = list(raw, 'split_conditions', path, m)
  const defaults = list(raw, 'default_left', path, m)
  const types = raw.split_type
  if (Array.isArray(types) && types.some((type) => type !== 0)) fail(`${path}.split_type`, 'holds categorical splits, which are not served: train with numerical features')
  const feature = new Array<number>(m)
  const threshold = new Array<number>(m)
  const value = new Array<number>(m)
  for (let i = 0; i < m; i++) {
    const leaf = left[i] === -1
    feature[i] = leaf ? -1 : (indices[i] as number)
    // On a leaf, split_conditions holds the leaf's value (learning rate included).
    threshold[i] = leaf ? 0 : (conditions[i] as number)
    value[i] = leaf ? (conditions[i] as number) : 0
  }
  return {
    output,
    width: 1,
    feature,
    threshold,
    left,
    right: right.map((r, i) => (left[i] === -1 ? -1 : r)),
    missing_left: defaults.map((d) => d === 1 || d === true),
    value,
  }
}
