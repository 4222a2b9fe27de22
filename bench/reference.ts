// Plain TypeScript version of the kernel's maths (dense layers and activations over Float64Array),
// in the same layout and with the same CompiledNet interface: the benchmark's baseline and the
// tests' reference. Nothing in the serving path uses it.
import type { CompiledNet, DenseLayer } from '../src/inference/kernel.ts'

/** out[r*nOut + j] = b[j] + Σ_i x[r*nIn + i] * wT[j*nIn + i], summed in index order. */
export function dense(x: Float64Array, rows: number, nIn: number, wT: Float64Array, b: Float64Array, nOut: number, out: Float64Array): void {
  for (let r = 0; r < rows; r++) {
    const xr = r * nIn
    for (let j = 0; j < nOut; j++) {
      const wj = j * nIn
      let s = 0
      for (let i = 0; i < nIn; i++) s += x[xr + i]! * wT[wj + i]!
      out[r * nOut + j] = b[j]! + s
    }
  }
}

export function relu(p: Float64Array): void {
  for (let i = 0; i < p.length; i++) p[i] = p[i]! > 0 ? p[i]! : 0
}

export function tanh(p: Float64Array): void {
  for (let i = 0; i < p.length; i++) p[i] = Math.tanh(p[i]!)
}

/** Stable logistic: exp is only ever taken of a non-positive number. */
export function sigmoid(p: Float64Array): void {
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!
    if (v >= 0) p[i] = 1 / (1 + Math.exp(-v))
    else {
      const e = Math.exp(v)
      p[i] = e / (1 + e)
    }
  }
}

/** Per row of `cols` values, after subtracting the row's max so exp cannot overflow. */
export function softmax(p: Float64Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const start = r * cols
    let m = -Infinity
    for (let j = 0; j < cols; j++) m = Math.max(m, p[start + j]!)
    let sum = 0
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(p[start + j]! - m)
      p[start + j] = e
      sum += e
    }
    for (let j = 0; j < cols; j++) p[start + j] = p[start + j]! / sum
  }
}

/** [nIn][nOut] as in a model file → [nOut][nIn] row-major, the layout `dense` reads. */
export function transpose(weights: readonly (readonly number[])[]): Float64Array {
  const nIn = weights.length
  const nOut = weights[0]?.length ?? 0
  const wT = new Float64Array(nIn * nOut)
  for (let i = 0; i < nIn; i++) {
    for (let j = 0; j < nOut; j++) wT[j * nIn + i] = weights[i]![j]!
  }
  return wT
}

/** The layers packed once into Float64Arrays, run with plain loops over the whole batch at once; buffers are reused across calls. */
export function compileReference(layers: readonly DenseLayer[]): CompiledNet {
  const packed = layers.map((layer) => ({
    nIn: layer.weights.length,
    nOut: layer.bias.length,
    wT: transpose(layer.weights),
    b: Float64Array.from(layer.bias),
    activation: layer.activation,
  }))
  const nIn = packed[0]!.nIn
  const nOut = packed.at(-1)!.nOut
  let buffers: Float64Array[] = []
  let capacity = 0
  return {
    nIn,
    nOut,
    run(rows, fill) {
      if (rows > capacity || buffers.length === 0) {
        capacity = rows
        buffers = [new Float64Array(rows * nIn), ...packed.map((l) => new Float64Array(rows * l.nOut))]
      }
      let x = buffers[0]!.subarray(0, rows * nIn)
      fill(x, 0, rows)
      packed.forEach((l, k) => {
        const out = buffers[k + 1]!.subarray(0, rows * l.nOut)
        dense(x, rows, l.nIn, l.wT, l.b, l.nOut, out)
        switch (l.activation) {
          case 'relu': relu(out); break
          case 'tanh': tanh(out); break
          case 'sigmoid': sigmoid(out); break
          case 'softmax': softmax(out, rows, l.nOut); break
          case 'identity': break
        }
        x = out
      })
      return x.slice()
    },
  }
}
