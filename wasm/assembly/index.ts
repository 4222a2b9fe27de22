// Numeric kernel for model serving: batched dense layers and in-place activations over f64
// buffers that the host lays out in this module's linear memory. Every pointer is a byte
// offset chosen by the host (src/inference/kernel.ts); this module never allocates.

/** First byte the host may use; everything below is this module's static data (exp's lookup table). */
export function heapBase(): usize {
  return __heap_base;
}

/**
 * out[r*nOut + j] = act(b[j] + Σ_i x[r*nIn + i] * w[i*stride + j]), act being v > 0 ? v : 0 if `relu`
 * (fused: no second pass over the outputs) and the identity otherwise. w is [nIn][stride] and b is
 * [stride], stride = nOut rounded up to 4; only outputs < nOut are written. SIMD runs across outputs, so
 * each lane sums in index order, bit for bit the plain loop, with no horizontal sums. Any nOut works;
 * below 4 most lanes are padding, and denseNarrow is faster.
 */
export function dense(x: usize, rows: i32, nIn: i32, w: usize, b: usize, nOut: i32, out: usize, relu: bool): void {
  const rowBytes = <usize>nIn << 3;
  const outRowBytes = <usize>nOut << 3;
  const stride = <usize>((nOut + 3) & ~3) << 3;
  let r = 0;
  // Tiles of 4 rows x 4 outputs: 8 independent accumulators, and each weight load serves 4 rows.
  for (; r + 4 <= rows; r += 4) {
    const x0 = x + <usize>r * rowBytes;
    const o0 = out + <usize>r * outRowBytes;
    for (let j = 0; j < nOut; j += 4) {
      let wp = w + (<usize>j << 3);
      let a0 = f64x2.splat(0);
      let c0 = a0, a1 = a0, c1 = a0, a2 = a0, c2 = a0, a3 = a0, c3 = a0;
      for (let i: usize = 0; i < rowBytes; i += 8) {
        const lo = v128.load(wp);
        const hi = v128.load(wp, 16);
        const p = x0 + i;
        const v0 = v128.load64_splat(p);
        const v1 = v128.load64_splat(p + rowBytes);
        const v2 = v128.load64_splat(p + 2 * rowBytes);
        const v3 = v128.load64_splat(p + 3 * rowBytes);
        a0 = f64x2.add(a0, f64x2.mul(v0, lo)); c0 = f64x2.add(c0, f64x2.mul(v0, hi));
        a1 = f64x2.add(a1, f64x2.mul(v1, lo)); c1 = f64x2.add(c1, f64x2.mul(v1, hi));
        a2 = f64x2.add(a2, f64x2.mul(v2, lo)); c2 = f64x2.add(c2, f64x2.mul(v2, hi));
        a3 = f64x2.add(a3, f64x2.mul(v3, lo)); c3 = f64x2.add(c3, f64x2.mul(v3, hi));
        wp += stride;
      }
      const bp = b + (<usize>j << 3);
      const blo = v128.load(bp);
      const bhi = v128.load(bp, 16);
      const o = o0 + (<usize>j << 3);
      const left = nOut - j;
      put4(o, a0, c0, blo, bhi, relu, left);
      put4(o + outRowBytes, a1, c1, blo, bhi, relu, left);
      put4(o + 2 * outRowBytes, a2, c2, blo, bhi, relu, left);
      put4(o + 3 * outRowBytes, a3, c3, blo, bhi, relu, left);
    }
  }
  for (; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * outRowBytes;
    for (let j = 0; j < nOut; j += 4) {
      let wp = w + (<usize>j << 3);
      let a = f64x2.splat(0);
      let c = a;
      for (let i: usize = 0; i < rowBytes; i += 8) {
        const v = v128.load64_splat(xr + i);
        a = f64x2.add(a, f64x2.mul(v, v128.load(wp)));
        c = f64x2.add(c, f64x2.mul(v, v128.load(wp, 16)));
        wp += stride;
      }
      const bp = b + (<usize>j << 3);
      put4(or + (<usize>j << 3), a, c, v128.load(bp), v128.load(bp, 16), relu, nOut - j);
    }
  }
}

/** Stores outputs j..j+3 of one row (sums lo, hi plus bias), only the first `left` of them: rows are nOut wide, unpadded. */
// @ts-ignore: decorator
@inline
function put4(o: usize, lo: v128, hi: v128, blo: v128, bhi: v128, relu: bool, left: i32): void {
  // s + b rather than b + s: the same value, addition being commutative.
  let u = f64x2.add(lo, blo);
  let v = f64x2.add(hi, bhi);
  if (relu) {
    // pmax(0, v) is 0 < v ? v : 0, one instruction (max's NaN and -0 rules take eight), and what the plain loop does.
    u = f64x2.pmax(f64x2.splat(0), u);
    v = f64x2.pmax(f64x2.splat(0), v);
  }
  if (left >= 4) {
    v128.store(o, u);
    v128.store(o, v, 16);
  } else {
    // 1 to 3 outputs left: never write into the next row.
    store<f64>(o, f64x2.extract_lane(u, 0));
    if (left >= 2) store<f64>(o, f64x2.extract_lane(u, 1), 8);
    if (left == 3) store<f64>(o, f64x2.extract_lane(v, 0), 16);
  }
}

/**
 * The same as `dense` for narrow layers (1 to 3 outputs), as dot products over transposed weights
 * wT ([nOut][nIn]) and b [nOut]. SIMD runs along the row, so the sum's order (and its last bits) differ
 * from the plain loop.
 */
export function denseNarrow(x: usize, rows: i32, nIn: i32, wT: usize, b: usize, nOut: i32, out: usize, relu: bool): void {
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
  // A pass of its own: relu in the stores above slowed the loops by ~4% even when off.
  if (relu) {
    const end = out + <usize>rows * outRowBytes;
    for (let q = out; q < end; q += 8) {
      const v = load<f64>(q);
      store<f64>(q, v > 0 ? v : 0);
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

export { normalize, sigmoid32, softmax32, trees } from './trees'
