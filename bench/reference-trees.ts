// Plain TypeScript version of the kernel's tree traversal (wasm/assembly/trees.ts) over the same
// flat node arrays, one row at a time: the tests' reference and the kernel benchmark's baseline.
// Nothing in the serving path uses it.
import type { CompiledNet } from '../src/inference/kernel.ts'
import type { TreesSpec } from '../src/inference/model-trees.ts'
import { sigmoid, softmax } from './reference.ts'

const f32 = Math.fround

interface Flat {
  feat: Int32Array
  left: Int32Array
  right: Int32Array
  thr: Float64Array
  miss: Uint8Array
  values: Float64Array
  /** Per tree: root, output column, width. */
  trees: Int32Array
}

function flatten(spec: TreesSpec): Flat {
  // Summing in float32 (XGBoost): every leaf value a float32 number before it is added.
  const round = spec.accumulate === 'f32' ? f32 : (value: number) => value
  const nodes = spec.trees.reduce((n, tree) => n + tree.feature.length, 0)
  const flat: Flat = {
    feat: new Int32Array(nodes), left: new Int32Array(nodes), right: new Int32Array(nodes), thr: new Float64Array(nodes),
    miss: new Uint8Array(nodes), values: new Float64Array(spec.trees.reduce((n, tree) => n + tree.value.length, 0)), trees: new Int32Array(spec.trees.length * 3),
  }
  let offset = 0
  let v = 0
  spec.trees.forEach((tree, t) => {
    flat.trees.set([offset, tree.output, tree.width], t * 3)
    tree.feature.forEach((f, i) => {
      const n = offset + i
      flat.feat[n] = f
      flat.miss[n] = tree.missing_left?.[i] ? 1 : 0
      if (f < 0) {
        flat.left[n] = v
        for (let j = 0; j < tree.width; j++) flat.values[v++] = round(tree.value[i * tree.width + j]!)
      } else {
        flat.left[n] = offset + tree.left[i]!
        flat.right[n] = offset + tree.right[i]!
        flat.thr[n] = spec.comparison === 'lt32' ? f32(tree.threshold[i]!) : tree.threshold[i]!
      }
    })
    offset += tree.feature.length
  })
  return flat
}

function sigmoid32(p: Float64Array): void {
  for (let i = 0; i < p.length; i++) p[i] = f32(1 / f32(f32(Math.exp(-p[i]!)) + 1))
}

function softmax32(p: Float64Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const s = r * cols
    let m = -Infinity
    for (let j = 0; j < cols; j++) m = Math.max(m, f32(p[s + j]!))
    let sum = 0
    for (let j = 0; j < cols; j++) {
      const e = f32(Math.exp(f32(f32(p[s + j]!) - m)))
      p[s + j] = e
      // As XGBoost: the exps summed in double, each divided by the sum as a float.
      sum += e
    }
    const total = f32(sum)
    for (let j = 0; j < cols; j++) p[s + j] = f32(p[s + j]! / total)
  }
}

/** The ensemble as plain loops over typed arrays, with the kernel's semantics; buffers are fresh per call. */
export function compileTreesReference(spec: TreesSpec, nIn: number): CompiledNet {
  const { feat, left, right, thr, miss, values, trees } = flatten(spec)
  const nOut = spec.outputs
  const mode = spec.comparison
  const acc = spec.accumulate === 'f32'
  const mean = spec.aggregate === 'mean'
  return {
    nIn,
    nOut,
    run(rows, fill) {
      const x = new Float64Array(rows * nIn)
      fill(x, 0, rows)
      const out = new Float64Array(rows * nOut)
      for (let r = 0; r < rows; r++) {
        const xr = r * nIn
        const o = r * nOut
        for (let k = 0; k < nOut; k++) out[o + k] = mean ? 0 : acc ? f32(spec.base[k]!) : spec.base[k]!
        for (let t = 0; t < trees.length; t += 3) {
          let n = trees[t]!
          while (feat[n]! >= 0) {
            const v = x[xr + feat[n]!]!
            let goLeft = mode === 'lt32' ? f32(v) < thr[n]! : mode === 'le32' ? f32(v) <= thr[n]! : v <= thr[n]!
            if (v !== v) goLeft = miss[n] === 1
            n = goLeft ? left[n]! : right[n]!
          }
          const col = o + trees[t + 1]!
          const width = trees[t + 2]!
          const at = left[n]!
          for (let j = 0; j < width; j++) {
            const s = out[col + j]! + values[at + j]!
            out[col + j] = acc ? f32(s) : s
          }
        }
        if (mean) for (let k = 0; k < nOut; k++) out[o + k] = out[o + k]! / (trees.length / 3) + spec.base[k]!
      }
      switch (spec.link) {
        case 'sigmoid': acc ? sigmoid32(out) : sigmoid(out); break
        case 'softmax': acc ? softmax32(out, rows, nOut) : softmax(out, rows, nOut); break
        case 'normalize':
          for (let r = 0; r < rows; r++) {
            let sum = 0
            for (let k = 0; k < nOut; k++) sum += out[r * nOut + k]!
            for (let k = 0; k < nOut; k++) out[r * nOut + k] = out[r * nOut + k]! / sum
          }
          break
        case 'identity': break
      }
      return out
    },
  }
}
