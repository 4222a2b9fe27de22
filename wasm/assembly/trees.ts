// Tree ensembles over f64 rows: every tree of a model walked for a chunk of rows, its leaves summed
// into the outputs (in float64, or in float32 as XGBoost does), then the mean and the base. The host
// (src/inference/kernel-trees.ts) lays the nodes out as 16-byte records; parseModel checked every index first.

/** How a node sends a row left: sklearn trees (float32 value ≤ float64 threshold), HistGradientBoosting (≤ in float64), XGBoost (< in float32). */
const LE32 = 0
const LE = 1
const LT32 = 2
/** The comparisons as types, for walk<M> and step<M>: resolved when compiling, so no step tests the mode. */
type Lt32 = f32
type Le32 = i32
type Le = f64

/**
 * Node n's child for row xr, without a branch. A node is 16 bytes: its feature (bit 31 set when a
 * missing value goes left), its left child (the right one follows it), its threshold (f64; for the
 * float32 comparisons a float32 value). A NaN value (missing) follows bit 31; the host passes NaN
 * only to models that learned where missing values go. A leaf names feature 0, threshold NaN (every
 * comparison false: right) and itself less one as left child, so every row stays on it.
 */
// @ts-ignore: decorator
@inline
function step<M>(xr: usize, n: i32, nodes: usize): i32 {
  const node = nodes + (<usize>n << 4)
  const fm = load<i32>(node)
  const v = load<f64>(xr + (<usize>(fm & 0x7fffffff) << 3))
  const t = load<f64>(node, 8)
  let goLeft: bool
  // M names the comparison at compile time (Lt32, Le32, Le above), so each walk has exactly one.
  if (isFloat<M>() && sizeof<M>() == 4) goLeft = <f64><f32>v < t
  else if (isInteger<M>()) goLeft = <f64><f32>v <= t
  else goLeft = v <= t
  goLeft = select<bool>(fm < 0, goLeft, v != v)
  return load<i32>(node, 4) + (goLeft ? 0 : 1)
}

/** Adds leaf `leaf`'s `width` values (from vidx[leaf] in `values`) into row output `o`. */
// @ts-ignore: decorator
@inline
function addLeaf(o: usize, leaf: i32, vidx: usize, values: usize, width: i32, f32acc: bool): void {
  const v = values + (<usize>load<i32>(vidx + (<usize>leaf << 2)) << 3)
  for (let j = 0; j < width; j++) {
    const p = o + (<usize>j << 3)
    const s = load<f64>(p) + load<f64>(v + (<usize>j << 3))
    // A float32 sum of two float32 values: the f64 sum is exact enough that rounding it once is the f32 add.
    store<f64>(p, f32acc ? <f64><f32>s : s)
  }
}

/**
 * out[r*nOut + k] = start_k + Σ over trees of the leaf values row r reaches, for `rows` rows of nIn
 * f64 values at x. Trees are (root, output column, width, depth) i32 quadruples at `treeList`. Nodes are
 * global indices into `nodes` (16 bytes each, see step) and vidx (i32: where a leaf's values start).
 * aggregate mean divides the sums by nTrees and then adds base; sum starts from base. With f32acc
 * every sum is rounded to float32 after each tree, starting from float32(base).
 */
export function trees(
  x: usize, rows: i32, nIn: i32,
  nodes: usize, vidx: usize, values: usize,
  treeList: usize, nTrees: i32, base: usize, nOut: i32, out: usize,
  mode: i32, f32acc: bool, mean: bool,
): void {
  const rowBytes = <usize>nIn << 3
  const outBytes = <usize>nOut << 3
  for (let r = 0; r < rows; r++) {
    const o = out + <usize>r * outBytes
    for (let k = 0; k < nOut; k++) {
      const b = mean ? 0 : load<f64>(base + (<usize>k << 3))
      store<f64>(o + (<usize>k << 3), f32acc ? <f64><f32>b : b)
    }
  }
  if (mode == LT32) walk<Lt32>(x, rows, rowBytes, nodes, vidx, values, treeList, nTrees, outBytes, out, f32acc)
  else if (mode == LE32) walk<Le32>(x, rows, rowBytes, nodes, vidx, values, treeList, nTrees, outBytes, out, f32acc)
  else walk<Le>(x, rows, rowBytes, nodes, vidx, values, treeList, nTrees, outBytes, out, f32acc)
  if (mean) {
    const t = <f64>nTrees
    for (let r = 0; r < rows; r++) {
      const o = out + <usize>r * outBytes
      for (let k = 0; k < nOut; k++) {
        const p = o + (<usize>k << 3)
        store<f64>(p, load<f64>(p) / t + load<f64>(base + (<usize>k << 3)))
      }
    }
  }
}

// One copy per comparison (M, resolved when compiling), so no node loop tests the mode.
// Trees outer, rows inner (in blocks of 8): a tree's nodes stay in cache across the chunk; per row
// the sums still run in tree order. Every row takes `depth` steps (leaves loop on themselves), so the walk has no
// data-dependent branch, and eight rows walk a tree together, their loads independent of one another.
// @ts-ignore: decorator
@inline
function walk<M>(
  x: usize, rows: i32, rowBytes: usize,
  nodes: usize, vidx: usize, values: usize,
  treeList: usize, nTrees: i32, outBytes: usize, out: usize, f32acc: bool,
): void {
  // Fewer than 8 rows (a single one, most often) skip straight to the loop below.
  for (let t = 0; rows >= 8 && t < nTrees; t++) {
    const tp = treeList + (<usize>t << 4)
    const root = load<i32>(tp)
    const col = <usize>load<i32>(tp, 4) << 3
    const width = load<i32>(tp, 8)
    const depth = load<i32>(tp, 12)
    let r = 0
    for (; r + 8 <= rows; r += 8) {
      const x0 = x + <usize>r * rowBytes
      let n0 = root, n1 = root, n2 = root, n3 = root, n4 = root, n5 = root, n6 = root, n7 = root
      for (let d = 0; d < depth; d++) {
        n0 = step<M>(x0, n0, nodes)
        n1 = step<M>(x0 + rowBytes, n1, nodes)
        n2 = step<M>(x0 + 2 * rowBytes, n2, nodes)
        n3 = step<M>(x0 + 3 * rowBytes, n3, nodes)
        n4 = step<M>(x0 + 4 * rowBytes, n4, nodes)
        n5 = step<M>(x0 + 5 * rowBytes, n5, nodes)
        n6 = step<M>(x0 + 6 * rowBytes, n6, nodes)
        n7 = step<M>(x0 + 7 * rowBytes, n7, nodes)
      }
      const o0 = out + <usize>r * outBytes + col
      addLeaf(o0, n0, vidx, values, width, f32acc)
      addLeaf(o0 + outBytes, n1, vidx, values, width, f32acc)
      addLeaf(o0 + 2 * outBytes, n2, vidx, values, width, f32acc)
      addLeaf(o0 + 3 * outBytes, n3, vidx, values, width, f32acc)
      addLeaf(o0 + 4 * outBytes, n4, vidx, values, width, f32acc)
      addLeaf(o0 + 5 * outBytes, n5, vidx, values, width, f32acc)
      addLeaf(o0 + 6 * outBytes, n6, vidx, values, width, f32acc)
      addLeaf(o0 + 7 * outBytes, n7, vidx, values, width, f32acc)
    }
  }
  // The last rows % 8 (a single row, most often): eight trees walk together instead of eight rows,
  // as far as the deepest of them (a leaf is its own child, so a shallower one stays put); their
  // leaves are still added in tree order.
  for (let r = rows & ~7; r < rows; r++) {
    const xr = x + <usize>r * rowBytes
    const o = out + <usize>r * outBytes
    let t = 0
    for (; t + 8 <= nTrees; t += 8) {
      const tp = treeList + (<usize>t << 4)
      let n0 = load<i32>(tp), n1 = load<i32>(tp, 16), n2 = load<i32>(tp, 32), n3 = load<i32>(tp, 48)
      let n4 = load<i32>(tp, 64), n5 = load<i32>(tp, 80), n6 = load<i32>(tp, 96), n7 = load<i32>(tp, 112)
      let depth = 0
      for (let k: usize = 0; k < 128; k += 16) depth = max(depth, load<i32>(tp + k, 12))
      for (let d = 0; d < depth; d++) {
        n0 = step<M>(xr, n0, nodes)
        n1 = step<M>(xr, n1, nodes)
        n2 = step<M>(xr, n2, nodes)
        n3 = step<M>(xr, n3, nodes)
        n4 = step<M>(xr, n4, nodes)
        n5 = step<M>(xr, n5, nodes)
        n6 = step<M>(xr, n6, nodes)
        n7 = step<M>(xr, n7, nodes)
      }
      addLeaf(o + (<usize>load<i32>(tp, 4) << 3), n0, vidx, values, load<i32>(tp, 8), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 20) << 3), n1, vidx, values, load<i32>(tp, 24), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 36) << 3), n2, vidx, values, load<i32>(tp, 40), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 52) << 3), n3, vidx, values, load<i32>(tp, 56), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 68) << 3), n4, vidx, values, load<i32>(tp, 72), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 84) << 3), n5, vidx, values, load<i32>(tp, 88), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 100) << 3), n6, vidx, values, load<i32>(tp, 104), f32acc)
      addLeaf(o + (<usize>load<i32>(tp, 116) << 3), n7, vidx, values, load<i32>(tp, 120), f32acc)
    }
    for (; t < nTrees; t++) {
      const tp = treeList + (<usize>t << 4)
      let n = load<i32>(tp)
      const depth = load<i32>(tp, 12)
      for (let d = 0; d < depth; d++) n = step<M>(xr, n, nodes)
      addLeaf(o + (<usize>load<i32>(tp, 4) << 3), n, vidx, values, load<i32>(tp, 8), f32acc)
    }
  }
}

/** In place, per row of `cols` values: v / Σ v (a forest's summed class votes into probabilities). */
export function normalize(p: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 3
  for (let r = 0; r < rows; r++) {
    const row = p + <usize>r * rowBytes
    const end = row + rowBytes
    let sum: f64 = 0
    for (let q = row; q < end; q += 8) sum += load<f64>(q)
    for (let q = row; q < end; q += 8) store<f64>(q, load<f64>(q) / sum)
  }
}

/** In place, in float32 as XGBoost computes it: p[i] = 1 / (expf(-p[i]) + 1), every step rounded to float32. */
export function sigmoid32(p: usize, n: i32): void {
  const end = p + (<usize>n << 3)
  for (let q = p; q < end; q += 8) {
    const e = <f32>Math.exp(-load<f64>(q))
    store<f64>(q, <f64><f32>(<f32>1 / (e + <f32>1)))
  }
}

/** In place, per row of `cols` values, as XGBoost computes it: expf(v - max) / (float)Σ, the sum in float64 in index order. */
export function softmax32(p: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 3
  for (let r = 0; r < rows; r++) {
    const row = p + <usize>r * rowBytes
    const end = row + rowBytes
    let m: f32 = -Infinity
    for (let q = row; q < end; q += 8) m = max<f32>(m, <f32>load<f64>(q))
    // As XGBoost: the exps summed in double, each divided by the sum as a float.
    let sum: f64 = 0
    for (let q = row; q < end; q += 8) {
      const e = <f32>Math.exp(<f64>(<f32>load<f64>(q) - m))
      store<f64>(q, <f64>e)
      sum += <f64>e
    }
    const total = <f32>sum
    for (let q = row; q < end; q += 8) store<f64>(q, <f64>(<f32>load<f64>(q) / total))
  }
}
