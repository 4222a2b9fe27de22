// Tree ensembles in the WASM kernel: against the plain TypeScript traversal (bench/reference-trees.ts)
// on seeded random ensembles of every comparison, accumulation, aggregate and link; the comparison
// semantics on values chosen to tell them apart; and every rule of the `trees` model file.
import { beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Fill, Kernel } from '../src/inference/kernel.ts'
import { compileModel } from '../src/inference/loaded-model.ts'
import { ModelFileError, parseModel, type TreesModel } from '../src/inference/model-file.ts'
import { MAX_TREE_DEPTH, MAX_TREE_NODES, ModelTooLargeError, type Tree } from '../src/inference/model-trees.ts'
import { predictionsOf } from '../src/inference/outputs.ts'
import { fillRows, run } from '../src/inference/rows.ts'
import { mulberry32 as prng } from '../bench/prng'
import { compileTreesReference } from '../bench/reference-trees.ts'

type Json = Record<string, any>

let kernel: Kernel
beforeAll(async () => {
  kernel = await Kernel.load()
})

/** A random tree of up to `depth` levels over `n` features, children numbered after parents (depth first, as scikit-learn does). */
function randomTree(rand: () => number, n: number, depth: number, width: number, output: number, missing: boolean): Tree {
  const t = { feature: [] as number[], threshold: [] as number[], left: [] as number[], right: [] as number[], value: [] as number[], missing_left: [] as boolean[] }
  const grow = (level: number): number => {
    const i = t.feature.length
    t.feature.push(-1); t.threshold.push(0); t.left.push(-1); t.right.push(-1); t.missing_left.push(rand() < 0.5)
    for (let j = 0; j < width; j++) t.value.push(rand() * 10 - 5)
    if (level < depth && rand() < 0.85) {
      t.feature[i] = Math.floor(rand() * n)
      t.threshold[i] = rand() * 4 - 2
      t.left[i] = grow(level + 1)
      t.right[i] = grow(level + 1)
    }
    return i
  }
  grow(0)
  const { missing_left, ...rest } = t
  return { output, width, ...rest, ...(missing ? { missing_left } : {}) }
}

const head = (name: string, n: number) => ({ name, version: '1', features: Array.from({ length: n }, (_, i) => `x${i}`) })

function ensemble(seed: number, shape: Partial<TreesModel> & { classes?: string[] }, count: number, missing = true): Json {
  const rand = prng(seed)
  const outputs = shape.outputs ?? 1
  const perClass = shape.aggregate !== 'mean' && outputs > 1
  const width = perClass ? 1 : outputs
  const trees = Array.from({ length: count }, (_, t) => randomTree(rand, 6, 6, width, perClass ? t % outputs : 0, missing))
  return {
    ...head(`random-${seed}`, 6), kind: 'trees', outputs, comparison: 'le32', accumulate: 'f64', aggregate: 'sum',
    base: Array.from({ length: outputs }, () => rand() - 0.5), link: 'identity', trees, ...shape,
  }
}

const SHAPES: Array<[string, Json]> = [
  ['regression, le32, f64 sum (sklearn GradientBoosting)', { comparison: 'le32' }],
  ['regression, le, f64 sum (HistGradientBoosting)', { comparison: 'le' }],
  ['regression, lt32, f32 sum (XGBoost)', { comparison: 'lt32', accumulate: 'f32' }],
  ['regression, le32, mean (random forest)', { aggregate: 'mean' }],
  ['binary, lt32, f32, sigmoid', { comparison: 'lt32', accumulate: 'f32', link: 'sigmoid', classes: ['a', 'b'] }],
  ['binary, le, f64, sigmoid', { comparison: 'le', link: 'sigmoid', classes: ['a', 'b'] }],
  ['multiclass, lt32, f32, softmax (a tree per class)', { comparison: 'lt32', accumulate: 'f32', link: 'softmax', outputs: 3, classes: ['a', 'b', 'c'] }],
  ['multiclass, le32, f64, softmax', { link: 'softmax', outputs: 3, classes: ['a', 'b', 'c'] }],
  ['multiclass forest, mean of leaf probabilities, identity', { aggregate: 'mean', outputs: 3, classes: ['a', 'b', 'c'] }],
  ['multiclass forest, normalize', { aggregate: 'mean', link: 'normalize', outputs: 3, classes: ['a', 'b', 'c'] }],
]

/** Rows of 6 features from a seed, every tenth value missing (NaN) when `missing`. */
function batch(seed: number, rows: number, missing: boolean): Float64Array {
  const rand = prng(seed)
  return Float64Array.from({ length: rows * 6 }, () => (missing && rand() < 0.1 ? Number.NaN : rand() * 4 - 2))
}
const fillPacked = (x: Float64Array, nIn: number): Fill => (input, first, count) => input.set(x.subarray(first * nIn, (first + count) * nIn))

describe('the kernel against the TypeScript traversal', () => {
  SHAPES.forEach(([what, shape], k) => {
    // Sums bit for bit; after exp (sigmoid, softmax) two libms may differ in the last bits, and a float32 rounding with them.
    const rel = shape.link === 'sigmoid' || shape.link === 'softmax' ? 1e-6 : 0
    test(`${what}: equal ${rel ? 'to 1e-6' : 'bit for bit'}, with and without missing values, whatever rows % 4`, () => {
      // 43 trees: not a multiple of 8, so a single row also walks the last trees one by one.
      const file = parseModel(ensemble(100 + k, shape, 43), `random-${100 + k}`) as TreesModel
      const net = kernel.compileTrees(file, 6)
      const reference = compileTreesReference(file, 6)
      for (const rows of [1, 3, 4, 7, 1000]) {
        for (const missing of [false, true]) {
          const x = batch(rows, rows, missing)
          const actual = net.run(rows, fillPacked(x, 6))
          const expected = reference.run(rows, fillPacked(x, 6))
          if (rel === 0) expect(Array.from(actual)).toEqual(Array.from(expected))
          else expect(Array.from(actual).flatMap((a, i) => (Math.abs(a - expected[i]!) <= rel * Math.abs(expected[i]!) ? [] : [i]))).toEqual([])
          expect(actual.every(Number.isFinite)).toBe(true)
        }
      }
      kernel.release(net)
    })
  })

  test('1000 compile/release cycles of a tree model reuse the same memory', async () => {
    const own = await Kernel.load()
    const file = parseModel(ensemble(9, { comparison: 'lt32', accumulate: 'f32' }, 200), 'random-9') as TreesModel
    // The first round also allocates the scratch region batches run in.
    const first = own.compileTrees(file, 6)
    first.run(3, fillPacked(batch(0, 3, false), 6))
    own.release(first)
    const bytes = own.memoryBytes
    for (let i = 0; i < 1000; i++) {
      const net = own.compileTrees(file, 6)
      net.run(3, fillPacked(batch(i, 3, false), 6))
      own.release(net)
    }
    expect(own.memoryBytes).toBe(bytes)
    expect(own.liveNets).toBe(0)
  })

  test('batches larger than one chunk of scratch match too', () => {
    const file = parseModel(ensemble(7, { comparison: 'lt32', accumulate: 'f32' }, 10), 'random-7') as TreesModel
    const net = kernel.compileTrees(file, 6)
    const x = batch(1, 20_000, true)
    expect(Array.from(net.run(20_000, fillPacked(x, 6)))).toEqual(Array.from(compileTreesReference(file, 6).run(20_000, fillPacked(x, 6))))
    kernel.release(net)
  })
})

/** One split on x0 at `threshold`, leaves 1 (left) and 2 (right). */
const stump = (comparison: string, threshold: number, missingLeft?: boolean): Json => ({
  ...head('stump', 1), kind: 'trees', outputs: 1, comparison, accumulate: 'f64', aggregate: 'sum', base: [0], link: 'identity',
  trees: [{ output: 0, width: 1, feature: [0, -1, -1], threshold: [threshold, 0, 0], left: [1, -1, -1], right: [2, -1, -1], value: [0, 1, 2],
    ...(missingLeft === undefined ? {} : { missing_left: [missingLeft, false, false] }) }],
})

function predictRows(file: Json, rows: unknown[][]): unknown[] {
  const model = compileModel(kernel, parseModel(file, file.name), '')
  try {
    return predictionsOf(model, run(model, rows.length, (p) => `[${p.row}]${p.at}`, fillRows(rows, model)), rows.length)
  } finally {
    kernel.release(model.net)
  }
}

describe('comparisons as each library makes them', () => {
  // 0.1 is not a float32: fround(0.1) = 0.10000000149…, above the float64 threshold 0.1.
  test('le32 casts the value to float32 and compares with the float64 threshold (≤ goes left)', () => {
    expect(predictRows(stump('le32', 0.1), [[0.1], [0.09999999], [Math.fround(0.1)], [0.2]])).toEqual([2, 1, 2, 2])
    expect(predictRows(stump('le32', Math.fround(0.1)), [[0.1], [Math.fround(0.1)]])).toEqual([1, 1])
  })

  test('le compares in float64 (≤ goes left)', () => {
    expect(predictRows(stump('le', 0.1), [[0.1], [0.1000000000000001], [Math.fround(0.1)]])).toEqual([1, 2, 2])
  })

  test('lt32 compares float32 with float32 (< goes left, equal goes right)', () => {
    expect(predictRows(stump('lt32', 0.1), [[0.1], [0.099999999], [0.0999999], [-1]])).toEqual([2, 2, 1, 1])
  })

  test('a missing value (null) follows missing_left, both ways, whatever the comparison', () => {
    for (const comparison of ['le32', 'le', 'lt32']) {
      expect(predictRows(stump(comparison, 0, true), [[null], [-1], [1]])).toEqual([1, 1, 2])
      expect(predictRows(stump(comparison, 0, false), [[null], [-1], [1]])).toEqual([2, 1, 2])
    }
  })

  test('a model without missing_left refuses null with a 422 naming the row and the feature', () => {
    expect(() => predictRows(stump('le32', 0), [[1], [null]])).toThrow(expect.objectContaining({ status: 422 }))
    try {
      predictRows(stump('le32', 0), [[1], [null]])
    } catch (error) {
      expect((error as { problem(): Json }).problem().errors).toEqual([{ field: '[1][0]', message: expect.stringContaining('is null (a missing value)') }])
    }
  })

  test('f32 accumulation rounds after every tree, f64 does not; mean divides by the number of trees, then adds base', () => {
    const tree = (value: number): Json => ({ output: 0, width: 1, feature: [-1], threshold: [0], left: [-1], right: [-1], value: [value] })
    const file = (accumulate: string, aggregate = 'sum', base = 1): Json => ({
      ...head('sums', 1), kind: 'trees', outputs: 1, comparison: 'lt32', accumulate, aggregate, base: [base], link: 'identity',
      trees: [tree(1e-8), tree(1e-8), tree(0.5)],
    })
    const f32 = Math.fround
    expect(predictRows(file('f32'), [[0]])).toEqual([f32(f32(f32(f32(1) + f32(1e-8)) + f32(1e-8)) + 0.5)])
    expect(predictRows(file('f64'), [[0]])).toEqual([1 + 1e-8 + 1e-8 + 0.5])
    // XGBoost adds f32(leaf): 1 + f32(2^-24 + 2^-50) = 1 + 2^-24 ties to 1, where 1 + (2^-24 + 2^-50) would round up.
    const odd = 2 ** -24 + 2 ** -50
    const once = { ...file('f32'), trees: [tree(odd)] }
    expect(predictRows(once, [[0]])).toEqual([1])
    expect(Array.from(compileTreesReference(parseModel(once, 'sums') as TreesModel, 1).run(1, (x) => x.fill(0)))).toEqual([1])
    // And f32(base): base 1 + 2^-30 is 1 as a float32, plus the leaf 2^-23 is 1 + 2^-23 (not 1 + 2^-23 + 2^-30 rounded).
    expect(predictRows({ ...file('f32', 'sum', 1 + 2 ** -30), trees: [tree(2 ** -23)] }, [[0]])).toEqual([1 + 2 ** -23])
    expect(predictRows(file('f64', 'mean', 2), [[0]])).toEqual([(1e-8 + 1e-8 + 0.5) / 3 + 2])
  })

  test('softmax with f32 sums is XGBoost\'s: the exps summed in float64, each divided by that sum as a float32', () => {
    // Margins 0 and ten -17: exp(-17) ≈ 4.1e-8 is under half a float32 ulp of 1, so a float32 sum would stay 1 and p0 be 1.
    const margins = [0, ...new Array(10).fill(-17)]
    const classes = margins.map((_, i) => `c${i}`)
    const file = {
      ...head('soft', 1), kind: 'trees', classes, outputs: 11, comparison: 'lt32', accumulate: 'f32', aggregate: 'sum', base: margins, link: 'softmax',
      trees: [{ output: 0, width: 1, feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0] }],
    }
    const e = Math.fround(Math.exp(-17))
    const sum = Math.fround(1 + 10 * e)
    const [p] = predictRows(file, [[0]]) as Array<{ probabilities: Record<string, number> }>
    expect(Math.fround(1 / sum)).toBeLessThan(1)
    expect(p!.probabilities.c0).toBe(Math.fround(1 / sum))
    expect(Math.abs(p!.probabilities.c1! - Math.fround(e / sum))).toBeLessThanOrEqual(1e-6 * Math.fround(e / sum))
    const reference = compileTreesReference(parseModel(file, 'soft') as TreesModel, 1).run(1, (x) => x.fill(0))
    expect(reference[0]).toBe(Math.fround(1 / sum))
  })

  test('a tree deeper than MAX_TREE_DEPTH levels is refused, naming the node and the limit; MAX_TREE_DEPTH levels are served', () => {
    /** A chain of `levels` splits on x0, each sending x0 ≤ 0 to a leaf on the left. */
    const chain = (levels: number): Json => {
      const t = { feature: [] as number[], threshold: [] as number[], left: [] as number[], right: [] as number[], value: [] as number[] }
      for (let d = 0; d < levels; d++) {
        const i = t.feature.length
        t.feature.push(0, -1); t.threshold.push(d, 0); t.left.push(i + 1, -1); t.right.push(i + 2, -1); t.value.push(0, d)
      }
      t.feature.push(-1); t.threshold.push(0); t.left.push(-1); t.right.push(-1); t.value.push(levels)
      return { ...head('chain', 1), kind: 'trees', outputs: 1, comparison: 'le', accumulate: 'f64', aggregate: 'sum', base: [0], link: 'identity', trees: [{ output: 0, width: 1, ...t }] }
    }
    expect(predictRows(chain(MAX_TREE_DEPTH), [[-1], [0.5], [1e9]])).toEqual([0, 1, MAX_TREE_DEPTH])
    let error: unknown
    try {
      parseModel(chain(MAX_TREE_DEPTH + 1), 'chain')
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ModelFileError)
    expect((error as ModelFileError).path).toBe(`trees[0].left[${2 * MAX_TREE_DEPTH}]`)
    expect((error as ModelFileError).detail).toContain(`deeper than ${MAX_TREE_DEPTH} levels (MAX_TREE_DEPTH)`)
  })

  test('a forest classifier: the mean of per-tree class probabilities, label the argmax', () => {
    const leafy = (p: number[]): Json => ({ output: 0, width: 3, feature: [0, -1, -1], threshold: [0, 0, 0], left: [1, -1, -1], right: [2, -1, -1], value: [0, 0, 0, ...p, 0.2, 0.3, 0.5] })
    const forest = {
      ...head('forest', 1), kind: 'trees', classes: ['x', 'y', 'z'], outputs: 3, comparison: 'le32', accumulate: 'f64', aggregate: 'mean',
      base: [0, 0, 0], link: 'identity', trees: [leafy([1, 0, 0]), leafy([0.5, 0.5, 0])],
    }
    expect(predictRows(forest, [[-1], [1]])).toEqual([
      { label: 'x', probabilities: { x: 0.75, y: 0.25, z: 0 } },
      { label: 'z', probabilities: { x: 0.2, y: 0.3, z: 0.5 } },
    ])
  })
})

// The exporter's output for scikit-learn's estimators (scripts/export-sklearn.py), with the library's
// own predictions: whichever of them are in the tree.
const exported = join(import.meta.dir, 'fixtures/exported')
const exportedTrees = existsSync(exported)
  ? readdirSync(exported).filter((file) => file.endsWith('.expected.json')).map((file) => file.slice(0, -'.expected.json'.length))
    .filter((name) => JSON.parse(readFileSync(join(exported, `${name}.json`), 'utf8')).kind === 'trees')
  : []

describe('scikit-learn tree models as exported', () => {
  test('the exported fixtures are in the tree (test/fixtures/exported), trees among them', () => {
    expect(existsSync(exported)).toBe(true)
    expect(exportedTrees.length).toBeGreaterThan(0)
  })
  for (const name of exportedTrees) {
    test(`${name}: predictions equal scikit-learn's to 1e-8 relative, labels equal`, () => {
      const file = JSON.parse(readFileSync(join(exported, `${name}.json`), 'utf8'))
      const expected = JSON.parse(readFileSync(join(exported, `${name}.expected.json`), 'utf8'))
      const predictions = predictRows(file, expected.inputs)
      const near = (a: number, e: number) => Math.abs(a - e) <= 1e-8 * Math.abs(e) || Math.abs(a - e) < 1e-300
      if (expected.predictions) {
        expect(predictions.flatMap((p, r) => (near(p as number, expected.predictions[r]) ? [] : [r]))).toEqual([])
        return
      }
      const classified = predictions as Array<{ label: unknown; probabilities: Record<string, number> }>
      expect(classified.map((p) => String(p.label))).toEqual(expected.labels.map(String))
      const bad = classified.flatMap((p, r) => file.classes.flatMap((c: unknown, j: number) => (near(p.probabilities[String(c)]!, expected.probabilities[r][j]) ? [] : [[r, j]])))
      expect(bad).toEqual([])
    })
  }
})

describe('the trees model file', () => {
  const base = () => stump('le32', 0, true)
  const cases: Array<[string, (m: Json) => void, string, string]> = [
    ['an unknown comparison', (m) => (m.comparison = 'lt'), 'comparison', 'must be one of le32, le, lt32'],
    ['an unknown accumulation', (m) => (m.accumulate = 'f16'), 'accumulate', 'must be one of f64, f32'],
    ['an unknown aggregate', (m) => (m.aggregate = 'max'), 'aggregate', 'must be one of sum, mean'],
    ['an unknown link', (m) => (m.link = 'exp'), 'link', 'must be one of'],
    ['no trees', (m) => (m.trees = []), 'trees', 'non-empty'],
    ['a base of the wrong width', (m) => (m.base = [0, 0]), 'base', 'array of 1 numbers'],
    ['a regressor of two outputs', (m) => (m.outputs = 2), 'outputs', 'a regressor (no classes) has 1'],
    ['a binary classifier without sigmoid', (m) => (m.classes = ['a', 'b']), 'link', 'must be sigmoid'],
    ['outputs that do not fit the classes', (m) => Object.assign(m, { classes: ['a', 'b', 'c'], outputs: 2, base: [0, 0] }), 'outputs', 'for 3 classes'],
    ['a feature index past the features', (m) => (m.trees[0].feature[0] = 1), 'trees[0].feature[0]', 'from 0 to 0'],
    ['a child before its parent (a cycle)', (m) => Object.assign(m.trees[0], { feature: [0, 0, -1], left: [1, 0, -1], right: [2, 2, -1] }), 'trees[0].left[1]', 'children come after their parent'],
    ['a child out of range', (m) => (m.trees[0].right[0] = 3), 'trees[0].right[0]', 'from 1 to 2'],
    ['a node with two parents', (m) => Object.assign(m.trees[0], { feature: [0, 0, -1, -1], threshold: [0, 0, 0, 0], left: [1, 2, -1, -1], right: [2, 3, -1, -1], value: [0, 0, 1, 2], missing_left: [true, true, false, false] }), 'trees[0].left[1]', 'already has a parent'],
    ['both children the same node', (m) => (m.trees[0].right[0] = 1), 'trees[0].left[0]', 'already has a parent'],
    ['a leaf with a child', (m) => (m.trees[0].left[1] = 2), 'trees[0].left[1]', 'must be -1'],
    ['a tree wider than the outputs', (m) => (m.trees[0].width = 2), 'trees[0].width', 'output + width ≤ outputs'],
    ['an output past the outputs', (m) => (m.trees[0].output = 1), 'trees[0].output', 'from 0 to 0'],
    ['values of the wrong length', (m) => m.trees[0].value.pop(), 'trees[0].value', 'array of 3 numbers'],
    ['a non-finite leaf value', (m) => (m.trees[0].value[2] = '1'), 'trees[0].value[2]', 'finite'],
    ['a threshold that is no number', (m) => (m.trees[0].threshold[0] = null), 'trees[0].threshold[0]', 'finite'],
    ['missing_left of the wrong length', (m) => m.trees[0].missing_left.pop(), 'trees[0].missing_left', 'array of 3 booleans'],
    ['missing_left that is no boolean', (m) => (m.trees[0].missing_left[0] = 1), 'trees[0].missing_left[0]', 'true or false'],
    ['arrays of different lengths', (m) => m.trees[0].left.pop(), 'trees[0].left', 'array of 3 integers'],
    ['an unknown tree field', (m) => (m.trees[0].depth = 2), 'trees[0].depth', 'is not a field of a tree'],
    ['an unknown model field', (m) => (m.layers = []), 'layers', 'is not a field of a trees model'],
  ]
  for (const [what, change, path, message] of cases) {
    test(`refuses ${what}, naming ${path}`, () => {
      const file = base()
      change(file)
      let error: unknown
      try {
        parseModel(file, 'stump')
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(ModelFileError)
      expect((error as ModelFileError).path).toBe(path)
      expect((error as ModelFileError).detail).toContain(message)
    })
  }

  test(`more than ${MAX_TREE_NODES} nodes is a ModelTooLargeError, counted before any tree is checked`, () => {
    const file = base()
    file.trees = [{ feature: new Array(MAX_TREE_NODES + 1).fill('?') }]
    expect(() => parseModel(file, 'stump')).toThrow(ModelTooLargeError)
    expect(() => parseModel(file, 'stump')).toThrow(`holds ${MAX_TREE_NODES + 1} tree nodes; at most ${MAX_TREE_NODES}`)
  })
})
