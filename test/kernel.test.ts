// The WASM kernel against the plain TypeScript reference and scikit-learn's outputs (through the
// service's own path: parseModel, compileModel, predictionsOf), and the boundary's memory
// management (reuse after release, growth, stale views).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Activation,
  type CompiledNet,
  type DenseLayer,
  type Fill,
  Kernel,
  ModelShapeError,
  fillFrom,
} from '../src/inference/kernel.ts'
import { compileModel } from '../src/inference/loaded-model.ts'
import { type DenseSpec, linearLayers, ModelFileError, modelLayers, parseModel } from '../src/inference/model-file.ts'
import { predictionsOf } from '../src/inference/outputs.ts'
import { mulberry32 as prng } from '../bench/prng'
import * as ref from '../bench/reference.ts'


function uniform(rand: () => number, n: number, scale: number): Float64Array {
  return Float64Array.from({ length: n }, () => (rand() * 2 - 1) * scale)
}

function matrix(rand: () => number, rows: number, cols: number, scale: number): number[][] {
  return Array.from({ length: rows }, () => Array.from(uniform(rand, cols, scale)))
}

function identityLayer(n: number, activation: Activation): DenseLayer {
  const weights = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)))
  return { weights, bias: new Array<number>(n).fill(0), activation }
}

// Below this, doubles are subnormal and two correct libms may differ in most of their few bits.
const TINY = 1e-300

/** |expected|'s largest value for every index: the error scale for outputs of several layers, where a row may cancel to ~0. */
const batchScale = (expected: Float64Array) => new Float64Array(expected.length).fill(Math.max(...expected.map(Math.abs)))

/** Indices where |actual - expected| > rel * scale (scale defaults to |expected|), or either is not a number. */
function mismatches(actual: ArrayLike<unknown>, expected: ArrayLike<number>, rel: number, scale?: ArrayLike<number>): number[] {
  expect(actual.length).toBe(expected.length)
  const bad: number[] = []
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]
    const e = expected[i]!
    const s = scale ? scale[i]! : Math.abs(e)
    // Negated so that NaN on either side counts as a mismatch.
    if (typeof a !== 'number' || !(Math.abs(a - e) <= Math.max(rel * s, TINY))) bad.push(i)
  }
  return bad
}

interface Fixture {
  model: DenseSpec & { name: string; classes?: string[] }
  expected: { inputs: number[][]; predictions?: number[]; probabilities?: number[][]; labels?: string[] }
}

async function fixture(name: string): Promise<Fixture> {
  const dir = join(import.meta.dir, 'fixtures/models')
  return {
    model: await Bun.file(join(dir, `${name}.json`)).json(),
    expected: await Bun.file(join(dir, `${name}.expected.json`)).json(),
  }
}

/** The fields every model file has, with `n` features x0, x1, …. */
const head = (name: string, n: number) => ({ name, version: '1', features: Array.from({ length: n }, (_, i) => `x${i}`) })

/** A model file as the registry serves it: validated, compiled into the shared kernel, described. */
const served = <F extends { readonly name: string }>(file: F) => compileModel(kernel, parseModel(file, file.name), '')

/** A Fill serving chunks of a packed row-major batch. */
const fillPacked = (x: Float64Array, nIn: number): Fill => (input, first, count) => input.set(x.subarray(first * nIn, (first + count) * nIn))

let kernel: Kernel
beforeAll(async () => {
  kernel = await Kernel.load()
})

describe('dense', () => {
  /**
   * Runs one identity layer through the kernel and the reference. Summation order differs (SIMD
   * lanes), so the error bound is relative to |b| + Σ|x·w| rather than to the possibly cancelled sum.
   */
  function compare(layer: DenseLayer, rows: number, x: Float64Array): Float64Array {
    const [nIn, nOut] = [layer.weights.length, layer.bias.length]
    const net = kernel.compile([layer])
    const actual = net.run(rows, fillPacked(x, nIn))
    kernel.release(net)
    const wT = ref.transpose(layer.weights)
    const expected = new Float64Array(rows * nOut)
    ref.dense(x, rows, nIn, wT, Float64Array.from(layer.bias), nOut, expected)
    const scale = new Float64Array(rows * nOut)
    ref.dense(x.map(Math.abs), rows, nIn, wT.map(Math.abs), Float64Array.from(layer.bias, Math.abs), nOut, scale)
    expect(mismatches(actual, expected, 1e-12, scale)).toEqual([])
    return actual
  }

  // [rows, nIn, nOut]: odd lengths (SIMD tail), nIn=1, one row, nOut=1, batches that are and are not multiples of 4.
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 3], [5, 1, 4], [3, 4, 1], [13, 33, 5], [4, 2, 2], [6, 3, 6],
    [7, 300, 9], [2, 64, 128], [10_000, 17, 3], [10_000, 256, 1], [9_999, 10, 32],
  ]

  for (const [rows, nIn, nOut] of shapes) {
    test(`${rows}×${nIn} → ${nOut} matches the reference`, () => {
      const rand = prng(rows * 1_000_003 + nIn * 1009 + nOut)
      const layer: DenseLayer = { weights: matrix(rand, nIn, nOut, 2), bias: Array.from(uniform(rand, nOut, 5)), activation: 'identity' }
      compare(layer, rows, uniform(rand, rows * nIn, 10))
    })
  }

  // dense runs SIMD across outputs, so each output sums in index order: exactly the plain loop.
  test('layers of 4 or more outputs equal the reference bit for bit, whatever rows % 4 and nOut % 4', () => {
    for (const [rows, nIn, nOut] of [[9_999, 10, 32], [13, 33, 5], [6, 3, 6], [3, 1, 7], [1, 16, 4]] as const) {
      const rand = prng(rows + nIn * 7 + nOut * 31)
      const layer: DenseLayer = { weights: matrix(rand, nIn, nOut, 2), bias: Array.from(uniform(rand, nOut, 5)), activation: 'identity' }
      const x = uniform(rand, rows * nIn, 10)
      const net = kernel.compile([layer])
      const actual = net.run(rows, fillPacked(x, nIn))
      kernel.release(net)
      const expected = new Float64Array(rows * nOut)
      ref.dense(x, rows, nIn, ref.transpose(layer.weights), Float64Array.from(layer.bias), nOut, expected)
      expect(actual).toEqual(expected)
    }
  })

  test('passes values through an identity matrix exactly, extremes and zeros included', () => {
    const values = [1e308, -1e308, 1e-308, 5e-324, 0, -1000, 1000, 123.456, -0.1]
    const net = kernel.compile([identityLayer(values.length, 'identity')])
    const actual = net.run(1, (input) => input.set(values))
    kernel.release(net)
    expect(Array.from(actual)).toEqual(values)
  })

  test('huge inputs against tiny weights and all-zero rows stay finite and match', () => {
    const rand = prng(7)
    const [rows, nIn, nOut] = [9, 11, 3]
    const x = uniform(rand, rows * nIn, 1e308)
    x.fill(0, 0, nIn)
    const layer: DenseLayer = { weights: matrix(rand, nIn, nOut, 1e-10), bias: [0, 1e300, -1], activation: 'identity' }
    expect(compare(layer, rows, x).every(Number.isFinite)).toBe(true)
  })
})

describe('activations', () => {
  // An identity layer hands the values to the activation unchanged, so each op is compared alone.
  function activate(activation: Activation, rows: number, cols: number, x: Float64Array): Float64Array {
    const net = kernel.compile([identityLayer(cols, activation)])
    try {
      return net.run(rows, fillPacked(x, cols))
    } finally {
      kernel.release(net)
    }
  }

  function reference(activation: Activation, rows: number, cols: number, x: Float64Array): Float64Array {
    const p = x.slice()
    if (activation === 'relu') ref.relu(p)
    if (activation === 'tanh') ref.tanh(p)
    if (activation === 'sigmoid') ref.sigmoid(p)
    if (activation === 'softmax') ref.softmax(p, rows, cols)
    return p
  }

  const extremes = [1e308, -1e308, 1000, -1000, 710, -746, 0, 1e-300, -1e-300, 20, -20, 1, -1]
  const shapes: [number, number][] = [[1, 1], [1, 7], [9, 3], [3, 1], [10_000, 5], [2, 2]]
  const activations: Activation[] = ['relu', 'tanh', 'sigmoid', 'softmax']

  for (const activation of activations) {
    const rel = activation === 'relu' ? 0 : 1e-9
    for (const [rows, cols] of shapes) {
      test(`${activation} over ${rows}×${cols} random values matches the reference`, () => {
        const x = uniform(prng(rows * 31 + cols), rows * cols, 30)
        expect(mismatches(activate(activation, rows, cols, x), reference(activation, rows, cols, x), rel)).toEqual([])
      })
    }

    test(`${activation} of extreme values gives no NaN and matches the reference`, () => {
      const cols = extremes.length
      // Row 2 is the same values reversed, so every value sits at an odd and an even position.
      const x = Float64Array.from([...extremes, ...extremes.toReversed()])
      const actual = activate(activation, 2, cols, x)
      expect(actual.some(Number.isNaN)).toBe(false)
      expect(mismatches(actual, reference(activation, 2, cols, x), rel)).toEqual([])
    })
  }

  test('softmax of [1e308, -1e308] and of a constant row is finite and sums to 1', () => {
    const x = Float64Array.from([1e308, -1e308, -1e308, -1e308])
    const actual = activate('softmax', 2, 2, x)
    expect(actual.some(Number.isNaN)).toBe(false)
    expect(actual[0]! + actual[1]!).toBe(1)
    expect(actual[2]! + actual[3]!).toBe(1)
    expect(mismatches(actual, reference('softmax', 2, 2, x), 1e-9)).toEqual([])
  })

  test('outputs stay in their ranges: relu ≥ 0, tanh in [-1, 1], sigmoid in [0, 1], softmax rows sum to 1', () => {
    const [rows, cols] = [500, 9]
    const x = uniform(prng(99), rows * cols, 50)
    expect(activate('relu', rows, cols, x).every((v) => v >= 0)).toBe(true)
    expect(activate('tanh', rows, cols, x).every((v) => v >= -1 && v <= 1)).toBe(true)
    expect(activate('sigmoid', rows, cols, x).every((v) => v >= 0 && v <= 1)).toBe(true)
    const soft = activate('softmax', rows, cols, x)
    const sums = Array.from({ length: rows }, (_, r) => soft.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0))
    expect(mismatches(sums, new Array<number>(rows).fill(1), 1e-12)).toEqual([])
  })
})

describe('networks', () => {
  function randomLayers(rand: () => number, widths: number[], activations: Activation[]): DenseLayer[] {
    return activations.map((activation, k) => ({
      weights: matrix(rand, widths[k]!, widths[k + 1]!, 1),
      bias: Array.from(uniform(rand, widths[k + 1]!, 1)),
      activation,
    }))
  }

  function compare(layers: DenseLayer[], rows: number, seed: number): void {
    const net = kernel.compile(layers)
    const x = uniform(prng(seed), rows * net.nIn, 3)
    const actual = net.run(rows, fillPacked(x, net.nIn))
    kernel.release(net)
    const expected = ref.compileReference(layers).run(rows, fillPacked(x, net.nIn))
    expect(mismatches(actual, expected, 1e-9)).toEqual([])
  }

  // Widths alternate wide and narrow so both ping-pong scratch regions get their widest row from different layers.
  test('a deep net with every activation and uneven widths matches the reference', () => {
    const layers = randomLayers(prng(1), [10, 300, 2, 50, 7, 3], ['tanh', 'relu', 'sigmoid', 'identity', 'softmax'])
    compare(layers, 1, 11)
    compare(layers, 257, 12)
  })

  test('binary logistic (one row of coef, two classes) predicts [1 - p, p] with p = sigmoid(x·w + b)', () => {
    const rand = prng(3)
    const coef = matrix(rand, 1, 6, 2)
    const model = served({ ...head('binary', 6), kind: 'logistic', coef, intercept: [0.3], classes: ['no', 'yes'] })
    const rows = 50
    const x = uniform(rand, rows * 6, 3)
    const predictions = predictionsOf(model, model.net.run(rows, fillPacked(x, 6)), rows)
    kernel.release(model.net)

    const p = new Float64Array(rows)
    ref.dense(x, rows, 6, Float64Array.from(coef[0]!), Float64Array.from([0.3]), 1, p)
    ref.sigmoid(p)
    expect(predictions.map((q) => typeof q === 'object' && q.label)).toEqual(Array.from(p, (v) => (v > 1 - v ? 'yes' : 'no')))
    const probabilities = predictions.flatMap((q) => (typeof q === 'object' ? [q.probabilities.no!, q.probabilities.yes!] : []))
    expect(mismatches(probabilities, Array.from(p).flatMap((v) => [1 - v, v]), 1e-9)).toEqual([])
  })

  test('an mlp classifier with a single sigmoid output is binary, and numeric classes become string keys', () => {
    const rand = prng(4)
    const layers = randomLayers(rand, [4, 8, 1], ['relu', 'sigmoid'])
    const model = served({ ...head('binary-mlp', 4), kind: 'mlp', layers, classes: [0, 1] })
    const [prediction] = predictionsOf(model, model.net.run(1, (input) => input.set([1, 2, 3, 4])), 1)
    kernel.release(model.net)
    const p = ref.compileReference(layers).run(1, (input) => input.set([1, 2, 3, 4]))[0]!
    if (typeof prediction !== 'object') throw new Error(`expected a classification, got ${prediction}`)
    expect(prediction.label).toBe(p > 0.5 ? 1 : 0)
    expect(Object.keys(prediction.probabilities)).toEqual(['0', '1'])
    expect(mismatches(Object.values(prediction.probabilities), [1 - p, p], 1e-9)).toEqual([])
  })

  test('the returned outputs are a copy the next run does not overwrite', () => {
    const net = kernel.compile(linearLayers({ kind: 'linear', coef: [2], intercept: 1 }))
    const first = net.run(2, (input) => input.set([1, 2]))
    const before = Array.from(first)
    net.run(2, (input) => input.set([5, 6]))
    kernel.release(net)
    expect(Array.from(first)).toEqual(before)
    expect(before).toEqual([3, 5])
  })
})

describe('scikit-learn fixtures', () => {
  const names = ['seed-linear', 'diabetes-linear', 'iris-logistic', 'diabetes-mlp']

  for (const name of names) {
    test(`${name}: whole batch and single rows match the expected predictions`, async () => {
      const { model, expected } = await fixture(name)
      // Only softmax/sigmoid/tanh go through exp or tanh, where libms may differ in the last bits.
      const rel = modelLayers(model).some((l) => l.activation !== 'identity' && l.activation !== 'relu') ? 1e-6 : 1e-9
      const loaded = served(model)
      const rows = expected.inputs.length
      const batch = predictionsOf(loaded, loaded.net.run(rows, fillFrom(expected.inputs)), rows)
      const single = expected.inputs.flatMap((row) => predictionsOf(loaded, loaded.net.run(1, fillFrom([row])), 1))
      kernel.release(loaded.net)

      for (const predictions of [batch, single]) {
        if (expected.predictions) {
          expect(mismatches(predictions, expected.predictions, rel)).toEqual([])
        } else {
          const classes = model.classes!
          const probabilities = predictions.map((p) => (typeof p === 'number' ? [] : classes.map((c) => p.probabilities[c]!)))
          expect(mismatches(probabilities.flat(), expected.probabilities!.flat(), rel)).toEqual([])
          expect(predictions.map((p) => typeof p === 'object' && p.label)).toEqual(expected.labels!)
        }
      }
    })
  }
})

describe('model shapes', () => {
  const layer = (nIn: number, nOut: number, activation: Activation = 'identity'): DenseLayer => ({
    weights: Array.from({ length: nIn }, () => new Array<number>(nOut).fill(0.5)),
    bias: new Array<number>(nOut).fill(0),
    activation,
  })

  // What the kernel itself guards: layer lists it could not lay out in memory.
  const rejected: [string, () => unknown][] = [
    ['no layers', () => kernel.compile([])],
    ['a layer whose input does not match the previous output', () => kernel.compile([layer(3, 4), layer(5, 1)])],
    ['a ragged weight row', () => kernel.compile([{ ...layer(2, 2), weights: [[1, 2], [3]] }])],
    ['a layer without outputs', () => kernel.compile([{ weights: [[]], bias: [], activation: 'identity' }])],
  ]

  for (const [what, attempt] of rejected) {
    test(`rejects ${what} with a ModelShapeError`, () => {
      expect(attempt).toThrow(ModelShapeError)
    })
  }

  // Values, activation names and class counts are the model file's rules, refused before anything reaches the kernel.
  const mlp = (n: number, layers: unknown[], classes?: unknown[]) => ({ ...head('shape', n), kind: 'mlp', layers, ...(classes ? { classes } : {}) })
  const logistic = (coef: number[][], intercept: number[], classes: string[]) => ({ ...head('shape', 1), kind: 'logistic', coef, intercept, classes })
  const refused: [string, unknown, string][] = [
    ['a non-finite weight', mlp(1, [{ ...layer(1, 2), weights: [[1, Number.NaN]] }]), 'layers[0].weights[0][1]: must be a finite number'],
    ['a non-finite bias', mlp(1, [{ ...layer(1, 1), bias: [Infinity] }]), 'layers[0].bias[0]: must be a finite number'],
    ['an unknown activation', mlp(1, [{ ...layer(1, 1), activation: 'gelu' }]), 'layers[0].activation: must be one of relu, tanh, sigmoid, identity, softmax'],
    ['a logistic with 2 coef rows for 3 classes', logistic([[1], [2]], [0, 0], ['a', 'b', 'c']), 'coef: has 2 rows, expected 3'],
    ['a logistic with a missing intercept', logistic([[1]], [], ['a', 'b']), 'intercept: has 0 values, expected 1'],
    ['an mlp regressor with 2 outputs', mlp(2, [layer(2, 2)]), 'layers[0].bias: has 2 outputs; a regressor (no classes) has 1'],
    ['an mlp classifier whose outputs do not match its classes', mlp(2, [layer(2, 2)], ['a', 'b', 'c']), 'layers[0].bias: has 2 outputs for 3 classes: expected 3'],
  ]

  for (const [what, file, message] of refused) {
    test(`parseModel refuses ${what} with a ModelFileError naming the field`, () => {
      expect(() => parseModel(file, 'shape')).toThrow(ModelFileError)
      expect(() => parseModel(file, 'shape')).toThrow(message)
    })
  }

  test('rejects bad row counts and re-entrant runs', () => {
    const net = kernel.compile([layer(1, 1)])
    expect(() => net.run(-1, () => {})).toThrow(RangeError)
    expect(() => net.run(1.5, () => {})).toThrow(RangeError)
    expect(() => net.run(1, () => net.run(1, () => {}))).toThrow('already running')
    expect(net.run(0, () => {})).toEqual(new Float64Array(0))
    kernel.release(net)
  })
})

describe('memory', () => {
  test('1000 compile/release cycles reuse the same memory', async () => {
    const own = await Kernel.load()
    const rand = prng(5)
    const { model } = await fixture('diabetes-mlp')
    const big: DenseLayer[] = [{ weights: matrix(rand, 256, 64, 1), bias: Array.from(uniform(rand, 64, 1)), activation: 'tanh' }]
    const cycle = () => {
      const a = own.compile(modelLayers(model))
      const b = own.compile(big)
      own.release(a)
      const c = own.compile(modelLayers(model))
      own.release(b)
      own.release(c)
    }
    cycle()
    const bytes = own.memoryBytes
    for (let i = 1; i < 1000; i++) cycle()
    expect({ bytes: own.memoryBytes, live: own.liveNets }).toEqual({ bytes, live: 0 })
  })

  test('released neighbours merge: nets as large as several released ones take their place without growth', async () => {
    const own = await Kernel.load()
    const rand = prng(9)
    // Each unit is ~1 MB, far more than the < 64 KiB a growth leaves spare at the end of memory.
    const net = (units: number) => own.compile([{ weights: matrix(rand, 500 * units, 250, 1), bias: new Array<number>(250).fill(0), activation: 'identity' }])
    const fitsWithoutGrowth = (units: number) => {
      const bytes = own.memoryBytes
      const big = net(units)
      expect(own.memoryBytes).toBe(bytes)
      return big
    }
    const [a, b, c, e] = [net(1), net(1), net(1), net(1)]
    const guard = net(1)
    // b then a: a merges with the free block after it.
    own.release(b)
    own.release(a)
    const ab = fitsWithoutGrowth(2)
    own.release(ab)
    // e then c: c joins the free blocks on both sides.
    own.release(e)
    own.release(c)
    const abce = fitsWithoutGrowth(4)
    own.release(abce)
    // a2 then b2 while c2 is held: b2 merges with the free block before it.
    const [a2, b2, c2] = [net(1), net(1), net(1)]
    own.release(a2)
    own.release(b2)
    const x = uniform(rand, 1000, 1)
    const last = fitsWithoutGrowth(2)
    expect(last.run(1, fillPacked(x, 1000)).every(Number.isFinite)).toBe(true)
    for (const n of [last, c2, guard]) own.release(n)
    expect(own.liveNets).toBe(0)
  })

  test('a larger scratch region replaces the old one instead of adding to it', async () => {
    const own = await Kernel.load()
    // So wide that even the minimum chunk of 4 rows needs 1, 2, 3, then 4 MB of scratch.
    const widths = [32_768, 65_536, 98_304, 131_072]
    let scratchTotal = 0
    for (const nIn of widths) {
      const layers: DenseLayer[] = [{ weights: Array.from({ length: nIn }, (_, i) => [i % 3]), bias: [1], activation: 'identity' }]
      const net = own.compile(layers)
      const ones = (input: Float64Array) => input.fill(1)
      expect(Array.from(net.run(4, ones))).toEqual(Array.from(ref.compileReference(layers).run(4, ones)))
      own.release(net)
      scratchTotal += 4 * (nIn + 1) * 8
    }
    expect(own.memoryBytes).toBeLessThan(scratchTotal)
  })

  test('nets compiled before memory grows keep running correctly after it', async () => {
    const own = await Kernel.load()
    const rand = prng(6)
    const layers = (nIn: number, hidden: number): DenseLayer[] => [
      { weights: matrix(rand, nIn, hidden, 0.1), bias: Array.from(uniform(rand, hidden, 1)), activation: 'relu' },
      { weights: matrix(rand, hidden, 1, 1), bias: [0.5], activation: 'identity' },
    ]
    const x = uniform(rand, 1000 * 300, 2)
    const fill = fillPacked(x, 300)
    const nets = [layers(300, 16)].map((l) => ({ net: own.compile(l), reference: ref.compileReference(l) }))
    const check = ({ net, reference }: (typeof nets)[number], rows: number) => {
      const expected = reference.run(rows, fill)
      expect(mismatches(net.run(rows, fill), expected, 1e-12, batchScale(expected))).toEqual([])
    }
    const start = own.memoryBytes
    // Each 300×64 layer is ~150 KiB, so memory grows several times while earlier nets hold pointers into it.
    for (let i = 0; i < 30; i++) {
      const l = layers(300, 64)
      nets.push({ net: own.compile(l), reference: ref.compileReference(l) })
      check(nets[0]!, 1 + i * 33)
      check(nets.at(-1)!, 4)
    }
    expect(own.memoryBytes).toBeGreaterThan(start + 30 * 150_000)
    for (const entry of nets) check(entry, 100)
    for (const { net } of nets) own.release(net)
    expect(own.liveNets).toBe(0)
  })

  test('batches run in bounded scratch: memory settles after the first round, whatever the batch size', async () => {
    const own = await Kernel.load()
    const rand = prng(7)
    const layers: DenseLayer[] = [
      { weights: matrix(rand, 300, 16, 0.1), bias: Array.from(uniform(rand, 16, 1)), activation: 'tanh' },
      { weights: matrix(rand, 16, 3, 1), bias: Array.from(uniform(rand, 3, 1)), activation: 'softmax' },
    ]
    const x = uniform(rand, 10_000 * 300, 2)
    const fill = fillPacked(x, 300)
    const sizes = [1, 10_000, 77, 4096]
    const reference = ref.compileReference(layers)
    const expected = sizes.map((rows) => reference.run(rows, fill))
    let settled = 0
    for (let i = 0; i < 20; i++) {
      const net = own.compile(layers)
      const rows = sizes[i % 4]!
      expect(mismatches(net.run(rows, fill), expected[i % 4]!, 1e-9)).toEqual([])
      own.release(net)
      if (i === 3) settled = own.memoryBytes
    }
    expect(own.memoryBytes).toBe(settled)
    // Chunking means even the largest batch needs far less scratch than its own inputs.
    expect(settled).toBeLessThan(x.byteLength / 4)
  })

  test('fill is asked for every row exactly once, in order, a chunk at a time', () => {
    const rand = prng(8)
    const layer: DenseLayer = { weights: matrix(rand, 300, 2, 1), bias: [0, 1], activation: 'identity' }
    const net = kernel.compile([layer])
    const x = uniform(rand, 10_000 * 300, 1)
    const calls: [number, number][] = []
    const packed = fillPacked(x, 300)
    const actual = net.run(10_000, (input, first, count) => {
      calls.push([first, count])
      expect(input.length).toBe(count * 300)
      packed(input, first, count)
    })
    kernel.release(net)
    expect(calls.length).toBeGreaterThan(1)
    expect(calls.map(([first]) => first)).toEqual(calls.map((_, k) => calls.slice(0, k).reduce((sum, [, count]) => sum + count, 0)))
    expect(calls.reduce((sum, [, count]) => sum + count, 0)).toBe(10_000)
    const expected = ref.compileReference([layer]).run(10_000, packed)
    expect(mismatches(actual, expected, 1e-9, batchScale(expected))).toEqual([])
  })

  test('fillFrom rejects a row of the wrong length', () => {
    const net = kernel.compile(linearLayers({ kind: 'linear', coef: [1, 2], intercept: 0 }))
    expect(() => net.run(2, fillFrom([[1, 2], [3]]))).toThrow(RangeError)
    expect(Array.from(net.run(2, fillFrom([[1, 2], [3, 4]])))).toEqual([5, 11])
    kernel.release(net)
  })

  test('a released net cannot run, and releasing twice is harmless', () => {
    const net: CompiledNet = kernel.compile(linearLayers({ kind: 'linear', coef: [1], intercept: 0 }))
    kernel.release(net)
    kernel.release(net)
    expect(() => net.run(1, () => {})).toThrow('released')
  })
})

describe('single-file executable', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kernel-compile-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('bun build --compile embeds the wasm and the binary computes what bun run does', async () => {
    const entry = join(dir, 'entry.ts')
    await Bun.write(entry, [
      `import { Kernel } from ${JSON.stringify(join(import.meta.dir, '../src/inference/kernel.ts'))}`,
      `import { linearLayers } from ${JSON.stringify(join(import.meta.dir, '../src/inference/model-file.ts'))}`,
      'const kernel = await Kernel.load()',
      "const net = kernel.compile(linearLayers({ kind: 'linear', coef: [0.5, 1.5, -2], intercept: 0.25 }))",
      'console.log(JSON.stringify(Array.from(net.run(2, (x) => x.set([1, 0, 0, 2, 3, 5])))))',
    ].join('\n'))
    const binary = join(dir, 'kernel-entry')
    const build = Bun.spawnSync([process.execPath, 'build', '--compile', entry, '--outfile', binary], { stderr: 'pipe' })
    expect(build.stderr.toString()).not.toContain('error')
    expect(build.exitCode).toBe(0)
    // Run from the temp dir so a path relative to the source tree could not be found by accident.
    const compiled = Bun.spawnSync([binary], { cwd: dir })
    const interpreted = Bun.spawnSync([process.execPath, entry], { cwd: dir })
    expect(compiled.exitCode).toBe(0)
    expect(compiled.stdout.toString()).toBe(interpreted.stdout.toString())
    expect(JSON.parse(compiled.stdout.toString())).toHaveLength(2)
  })
})
