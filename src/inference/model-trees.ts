// The rules of a `trees` model file (tree ensembles: scikit-learn's trees, forests and boosting as
// the exporter writes them, XGBoost boosters once converted), checked completely before anything
// is compiled: every index in range, children numbered after their parent (so no cycles) and each
// node the child of one node at most (so trees, not graphs), leaves as wide as their tree, and the
// limit on nodes.

/** How a node sends a row left; see wasm/assembly/trees.ts. */
export const COMPARISONS = ['le32', 'le', 'lt32'] as const
export type Comparison = (typeof COMPARISONS)[number]
export const LINKS = ['identity', 'sigmoid', 'softmax', 'normalize'] as const
export type Link = (typeof LINKS)[number]

/** Most nodes one model may hold, all trees together; past it the file is a 413 (ModelTooLargeError). */
export const MAX_TREE_NODES = 1_000_000
/**
 * Most levels of splits one tree may have (root to deepest leaf): the kernel walks every row that many
 * steps per tree. scikit-learn's and XGBoost's trees stay far below (XGBoost's default max_depth is 6;
 * HistGradientBoosting's 31 leaves make at most 30 levels); a 999 999-node chain would be 500 000.
 */
export const MAX_TREE_DEPTH = 256

export interface Tree {
  /** First output column the tree adds into, and how many values each leaf holds. */
  readonly output: number
  readonly width: number
  /** Per node: the feature index, -1 on a leaf. */
  readonly feature: readonly number[]
  readonly threshold: readonly number[]
  readonly left: readonly number[]
  readonly right: readonly number[]
  /** Where a missing value goes at each node; absent when the model never learned it. */
  readonly missing_left?: readonly boolean[]
  /** Node-major, `width` values per node; only the leaves' are read. */
  readonly value: readonly number[]
}

export interface TreesSpec {
  readonly kind: 'trees'
  readonly outputs: number
  readonly comparison: Comparison
  readonly accumulate: 'f64' | 'f32'
  readonly aggregate: 'sum' | 'mean'
  readonly base: readonly number[]
  readonly link: Link
  readonly trees: readonly Tree[]
}

/** A tree model past MAX_TREE_NODES: too large to serve, whatever else is right with it. */
export class ModelTooLargeError extends Error {
  override name = 'ModelTooLargeError'
  constructor(readonly nodes: number) {
    super(`holds ${nodes} tree nodes; at most ${MAX_TREE_NODES} are allowed`)
  }
}

export const TREES_FIELDS = ['outputs', 'comparison', 'accumulate', 'aggregate', 'base', 'link', 'trees'] as const

type Fail = (path: string, message: string) => never
type Json = Record<string, unknown>

const TREE_FIELDS = ['output', 'width', 'feature', 'threshold', 'left', 'right', 'missing_left', 'value']
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)

/** True when every split node of every tree says where missing values go: then `null` is a value this model takes. */
export const takesMissing = (spec: TreesSpec) => spec.trees.every((tree) => tree.missing_left !== undefined)

function oneOf<T extends string>(raw: Json, key: string, options: readonly T[], fail: Fail): T {
  const value = raw[key]
  if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) fail(key, `must be one of ${options.join(', ')}`)
  return value as T
}

/** Checks the tree fields of a parsed file with `nFeatures` features and, for a classifier, `classes` labels. */
export function parseTrees(raw: Json, nFeatures: number, classes: number | undefined, fail: Fail): TreesSpec {
  const outputs = raw.outputs
  if (!isInt(outputs) || outputs < 1) fail('outputs', 'must be a positive integer (the width of the score vector)')
  const link = oneOf(raw, 'link', LINKS, fail)
  if (classes === undefined) {
    if (outputs !== 1) fail('outputs', `is ${outputs}; a regressor (no classes) has 1`)
    if (link !== 'identity' && link !== 'sigmoid') fail('link', 'must be identity or sigmoid for a regressor')
  } else if (outputs === 1) {
    if (classes !== 2) fail('outputs', `is 1 for ${classes} classes: one output is the probability of the second of two classes`)
    if (link !== 'sigmoid') fail('link', 'must be sigmoid: one output for two classes is the probability of the second')
  } else if (outputs !== classes) {
    fail('outputs', `is ${outputs} for ${classes} classes: expected ${classes}${classes === 2 ? ' or 1' : ''}`)
  } else if (link === 'sigmoid') fail('link', 'must be softmax, normalize or identity: one output per class')
  const comparison = oneOf(raw, 'comparison', COMPARISONS, fail)
  const accumulate = oneOf(raw, 'accumulate', ['f64', 'f32'] as const, fail)
  const aggregate = oneOf(raw, 'aggregate', ['sum', 'mean'] as const, fail)
  const base = raw.base
  if (!Array.isArray(base) || base.length !== outputs) fail('base', `must be an array of ${outputs} numbers`)
  base.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`base[${i}]`, 'must be a finite number')
  })
  const list = raw.trees
  if (!Array.isArray(list) || list.length === 0) fail('trees', 'must be a non-empty array of trees')
  // Counted before any tree is checked: a huge file is refused for its size, not its first flaw.
  let nodes = 0
  for (const tree of list) nodes += Array.isArray((tree as Json | null)?.feature) ? ((tree as Json).feature as unknown[]).length : 0
  if (nodes > MAX_TREE_NODES) throw new ModelTooLargeError(nodes)
  const trees = list.map((tree, t) => parseTree(tree, `trees[${t}]`, nFeatures, outputs, fail))
  return { kind: 'trees', outputs, comparison, accumulate, aggregate, base: base as number[], link, trees }
}

function parseTree(raw: unknown, path: string, nFeatures: number, outputs: number, fail: Fail): Tree {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, 'must be an object { output, width, feature, threshold, left, right, value }')
  const tree = raw as Json
  for (const key of Object.keys(tree)) if (!TREE_FIELDS.includes(key)) fail(`${path}.${key}`, `is not a field of a tree (${TREE_FIELDS.join(', ')})`)
  const { output, width } = tree
  if (!isInt(output) || output < 0 || output >= outputs) fail(`${path}.output`, `must be an integer from 0 to ${outputs - 1}`)
  if (!isInt(width) || width < 1 || output + width > outputs) fail(`${path}.width`, `must be an integer from 1 to ${outputs - output} (output + width ≤ outputs)`)
  const feature = tree.feature
  if (!Array.isArray(feature) || feature.length === 0) fail(`${path}.feature`, 'must be a non-empty array (one feature index per node, -1 on leaves)')
  const m = feature.length
  const ints = (key: string) => {
    const values = tree[key]
    if (!Array.isArray(values) || values.length !== m) fail(`${path}.${key}`, `must be an array of ${m} integers (one per node)`)
    return values as unknown[]
  }
  const left = ints('left')
  const right = ints('right')
  const threshold = tree.threshold
  if (!Array.isArray(threshold) || threshold.length !== m) fail(`${path}.threshold`, `must be an array of ${m} numbers (one per node)`)
  const value = tree.value
  if (!Array.isArray(value) || value.length !== m * width) fail(`${path}.value`, `must be an array of ${m * width} numbers (${width} per node)`)
  const missing = tree.missing_left
  if (missing !== undefined && (!Array.isArray(missing) || missing.length !== m)) fail(`${path}.missing_left`, `must be an array of ${m} booleans (one per node)`)
  // Each node has one parent at most: with children after parents, the nodes then form a tree.
  const parented = new Uint8Array(m)
  // Levels of splits above each node: children come after parents, so a parent's is known first.
  const level = new Int32Array(m)
  for (let i = 0; i < m; i++) {
    const f = feature[i]
    const at = (key: string) => `${path}.${key}[${i}]`
    if (!isInt(f) || f < -1 || f >= nFeatures) fail(at('feature'), `must be a feature index from 0 to ${nFeatures - 1}, or -1 for a leaf`)
    const l = left[i]
    const r = right[i]
    if (f === -1) {
      if (l !== -1 || r !== -1) fail(at(l !== -1 ? 'left' : 'right'), 'must be -1: the node is a leaf (feature -1)')
      for (let j = 0; j < width; j++) {
        const v = value[i * width + j]
        if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${path}.value[${i * width + j}]`, 'must be a finite number')
      }
    } else {
      // Children after their parent: sufficient for the nodes to form trees (no cycles), and how scikit-learn and XGBoost number them.
      if (!isInt(l) || l <= i || l >= m) fail(at('left'), `must be a node index from ${i + 1} to ${m - 1} (children come after their parent)`)
      if (!isInt(r) || r <= i || r >= m) fail(at('right'), `must be a node index from ${i + 1} to ${m - 1} (children come after their parent)`)
      if (l === r || parented[l] || parented[r]) fail(at(l === r || parented[l] ? 'left' : 'right'), 'names a node that already has a parent: each node has one')
      parented[l] = parented[r] = 1
      level[l] = level[r] = level[i]! + 1
      if (level[l]! > MAX_TREE_DEPTH) fail(at('left'), `makes the tree deeper than ${MAX_TREE_DEPTH} levels (MAX_TREE_DEPTH)`)
      const t = threshold[i]
      if (typeof t !== 'number' || !Number.isFinite(t)) fail(at('threshold'), 'must be a finite number')
    }
    if (missing !== undefined && typeof (missing as unknown[])[i] !== 'boolean') fail(at('missing_left'), 'must be true or false')
    // Leaves' thresholds and split nodes' values are never read, but must still be numbers.
    if (typeof threshold[i] !== 'number') fail(at('threshold'), 'must be a number')
  }
  if (feature[0] === -1 && m > 1) fail(`${path}.feature`, 'has more than one node but its root (node 0) is a leaf')
  return {
    output, width,
    feature: feature as number[], threshold: threshold as number[], left: left as number[], right: right as number[],
    ...(missing === undefined ? {} : { missing_left: missing as boolean[] }),
    value: value as number[],
  }
}

/** Trees and nodes of a model, for its summary. */
export function treeCounts(spec: TreesSpec): { trees: number; nodes: number } {
  let nodes = 0
  for (const tree of spec.trees) nodes += tree.feature.length
  return { trees: spec.trees.length, nodes }
}
