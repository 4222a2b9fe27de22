// Numeric kernel for model serving: batched dense layers and in-place activations over f64
// buffers that the host lays out in this module's linear memory. Every pointer is a byte
// offset chosen by the host (src/inference/kernel.ts); this module never allocates.

/** First byte the host may use; everything below is this module's static data (exp's lookup table). */
export function heapBase(): usize {
  return __heap_base;
}

/**
 * out[r*nOut + j] = b[j] + Σ_i x[r*nIn + i] * wT[j*nIn + i]
 * Weights are transposed ([nOut][nIn]) so every output is a dot product of two contiguous vectors.
 */
export function dense(x: usize, rows: i32, nIn: i32, wT: usize, b: usize, nOut: i32, out: usize): void {
  const rowBytes = <usize>nIn << 3;
  const outRowBytes = <usize>nOut << 3;
  // Bytes covered by whole f64x2 lanes; an odd nIn leaves one tail element at offset `pairBytes`.
  const pairBytes = <usize>(nIn >> 1) << 4;
  const hasTail = (nIn & 1) != 0;
  let r = 0;
  // Four rows share each weight load, and their four accumulators are independent chains (ILP).
  for (; r + 4 <= rows; r += 4) {
    const x0 = x + <usize>r * rowBytes;
    const x1 = x0 + rowBytes;
    const x2 = x1 + rowBytes;
    const x3 = x2 + rowBytes;
    const o0 = out + <usize>r * outRowBytes;
    for (let j = 0; j < nOut; j++) {
      const w = wT + <usize>j * rowBytes;
      let a0 = f64x2.splat(0);
      let a1 = a0;
      let a2 = a0;
      let a3 = a0;
      for (let i: usize = 0; i < pairBytes; i += 16) {
        const wv = v128.load(w + i);
        a0 = f64x2.add(a0, f64x2.mul(v128.load(x0 + i), wv));
        a1 = f64x2.add(a1, f64x2.mul(v128.load(x1 + i), wv));
        a2 = f64x2.add(a2, f64x2.mul(v128.load(x2 + i), wv));
        a3 = f64x2.add(a3, f64x2.mul(v128.load(x3 + i), wv));
      }
      let s0 = f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1);
      let s1 = f64x2.extract_lane(a1, 0) + f64x2.extract_lane(a1, 1);
      let s2 = f64x2.extract_lane(a2, 0) + f64x2.extract_lane(a2, 1);
      let s3 = f64x2.extract_lane(a3, 0) + f64x2.extract_lane(a3, 1);
      if (hasTail) {
        const wl = load<f64>(w + pairBytes);
        s0 += load<f64>(x0 + pairBytes) * wl;
        s1 += load<f64>(x1 + pairBytes) * wl;
        s2 += load<f64>(x2 + pairBytes) * wl;
        s3 += load<f64>(x3 + pairBytes) * wl;
      }
      const bj = load<f64>(b + (<usize>j << 3));
      const o = o0 + (<usize>j << 3);
      store<f64>(o, s0 + bj);
      store<f64>(o + outRowBytes, s1 + bj);
      store<f64>(o + 2 * outRowBytes, s2 + bj);
      store<f64>(o + 3 * outRowBytes, s3 + bj);
    }
  }
  for (; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * outRowBytes;
    for (let j = 0; j < nOut; j++) {
      store<f64>(or + (<usize>j << 3), dot(xr, wT + <usize>j * rowBytes, pairBytes, hasTail) + load<f64>(b + (<usize>j << 3)));
    }
  }
}

/** Dot product of one row with one weight vector; two accumulators so consecutive adds don't wait on each other. */
// @ts-ignore: decorator
@inline
function dot(x: usize, w: usize, pairBytes: usize, hasTail: bool): f64 {
  let a0 = f64x2.splat(0);
  let a1 = a0;
  let i: usize = 0;
  for (; i + 32 <= pairBytes; i += 32) {
    a0 = f64x2.add(a0, f64x2.mul(v128.load(x + i), v128.load(w + i)));
    a1 = f64x2.add(a1, f64x2.mul(v128.load(x + i, 16), v128.load(w + i, 16)));
  }
  if (i < pairBytes) {
    a0 = f64x2.add(a0, f64x2.mul(v128.load(x + i), v128.load(w + i)));
  }
  const a = f64x2.add(a0, a1);
  let s = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
  if (hasTail) s += load<f64>(x + pairBytes) * load<f64>(w + pairBytes);
  return s;
}

/** In place: p[i] = max(p[i], 0) over n values. */
export function relu(p: usize, n: i32): void {
  const zero = f64x2.splat(0);
  const pairBytes = <usize>(n >> 1) << 4;
  for (let i: usize = 0; i < pairBytes; i += 16) {
    v128.store(p + i, f64x2.max(v128.load(p + i), zero));
  }
  if (n & 1) store<f64>(p + pairBytes, max<f64>(load<f64>(p + pairBytes), 0));
}

/** In place: p[i] = tanh(p[i]) over n values. */
export function tanh(p: usize, n: i32): void {
  const end = p + (<usize>n << 3);
  for (let q = p; q < end; q += 8) store<f64>(q, Math.tanh(load<f64>(q)));
}

/** In place: p[i] = 1 / (1 + exp(-p[i])) over n values, never evaluating exp of a large positive number. */
export function sigmoid(p: usize, n: i32): void {
  const end = p + (<usize>n << 3);
  for (let q = p; q < end; q += 8) {
    const v = load<f64>(q);
    let s: f64;
    if (v >= 0) {
      s = 1 / (1 + Math.exp(-v));
    } else {
      const e = Math.exp(v);
      s = e / (1 + e);
    }
    store<f64>(q, s);
  }
}

/** In place, per row of `cols` values: exp(v - rowMax) / Σ exp(v - rowMax). */
export function softmax(p: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const row = p + <usize>r * rowBytes;
    const end = row + rowBytes;
    let m = -Infinity;
    for (let q = row; q < end; q += 8) m = max<f64>(m, load<f64>(q));
    let sum: f64 = 0;
    for (let q = row; q < end; q += 8) {
      const e = Math.exp(load<f64>(q) - m);
      store<f64>(q, e);
      sum += e;
    }
    // Division rather than multiplying by 1/sum: one rounding per value, as scikit-learn does.
    for (let q = row; q < end; q += 8) store<f64>(q, load<f64>(q) / sum);
  }
}
