// How a tree ensemble lies in the kernel's memory: every tree's nodes as 16-byte records (feature
// with a missing-goes-left bit, left child — the right one follows it —, threshold f64), renumbered
// breadth first so that siblings sit side by side; where each leaf's values start (i32) and the
// values packed (f64); one (root, output, width, depth) quadruple per tree, and the base. Only
// kernel.ts calls this, with the region it allocated.
import { align } from './kernel-heap'
import type { TreesSpec } from './model-trees'

export const MODES = { le32: 0, le: 1, lt32: 2 } as const

const NODE_BYTES = 16
const MISSING_LEFT = 0x80000000 | 0

/** Byte offsets (from the region's start) of each array, and the region's size. */
export interface TreesLayout {
  nodes: number
  node: number
  vidx: number
  values: number
  trees: number
  base: number
  bytes: number
}

export function layoutTrees(spec: TreesSpec): TreesLayout {
  let nodes = 0
  let values = 0
  for (const tree of spec.trees) {
    nodes += tree.feature.length
    for (const f of tree.feature) if (f < 0) values += tree.width
  }
  let at = 0
  const next = (bytes: number) => {
    const start = at
    at = align(at + bytes)
    return start
  }
  const layout = {
    nodes,
    node: next(nodes * NODE_BYTES),
    vidx: next(nodes * 4),
    values: next(values * 8),
    trees: next(spec.trees.length * 16),
    base: next(spec.outputs * 8),
    bytes: 0,
  }
  layout.bytes = at
  return layout
}

/**
 * Writes `spec` at `ptr` in `buffer` as `layout` says. Each tree is renumbered breadth first (its
 * children given two adjacent places), which also yields its depth: the kernel walks every row
 * that many steps, a leaf keeping the rows that reach it (see wasm/assembly/trees.ts).
 */
export function writeTrees(buffer: ArrayBuffer, ptr: number, spec: TreesSpec, layout: TreesLayout): void {
  const { nodes } = layout
  const ints = new Int32Array(buffer, ptr + layout.node, nodes * 4)
  const floats = new Float64Array(buffer, ptr + layout.node, nodes * 2)
  const vidx = new Int32Array(buffer, ptr + layout.vidx, nodes)
  const values = new Float64Array(buffer, ptr + layout.values, (layout.trees - layout.values) / 8)
  const list = new Int32Array(buffer, ptr + layout.trees, spec.trees.length * 4)
  // Summing in float32 (XGBoost): leaves and base are float32 numbers first, f32(sum + f32(leaf)) as XGBoost adds them.
  const acc32 = spec.accumulate === 'f32'
  const round = (value: number) => (acc32 ? Math.fround(value) : value)
  new Float64Array(buffer, ptr + layout.base, spec.outputs).set(spec.base.map(round))
  const f32 = spec.comparison === 'lt32'
  let offset = 0
  let v = 0
  spec.trees.forEach((tree, t) => {
    const m = tree.feature.length
    // order[k] is the file's node at place k; level[k] its depth.
    const order = new Int32Array(m)
    const level = new Int32Array(m)
    let placed = 1
    let depth = 0
    for (let k = 0; k < placed; k++) {
      const i = order[k]!
      const n = offset + k
      const f = tree.feature[i]!
      if (f < 0) {
        ints[n * 4] = 0
        ints[n * 4 + 1] = n - 1
        floats[n * 2 + 1] = Number.NaN
        vidx[n] = v
        for (let j = 0; j < tree.width; j++) values[v++] = round(tree.value[i * tree.width + j]!)
        continue
      }
      order[placed] = tree.left[i]!
      order[placed + 1] = tree.right[i]!
      level[placed] = level[placed + 1] = level[k]! + 1
      depth = Math.max(depth, level[k]! + 1)
      ints[n * 4] = f | (tree.missing_left?.[i] ? MISSING_LEFT : 0)
      ints[n * 4 + 1] = offset + placed
      floats[n * 2 + 1] = f32 ? Math.fround(tree.threshold[i]!) : tree.threshold[i]!
      vidx[n] = 0
      placed += 2
    }
    // Nodes no split reaches (XGBoost's deleted ones) get no place; their slots stay leaves of nothing.
    for (let k = placed; k < m; k++) {
      const n = offset + k
      ints[n * 4] = 0
      ints[n * 4 + 1] = n - 1
      floats[n * 2 + 1] = Number.NaN
      vidx[n] = 0
    }
    list.set([offset, tree.output, tree.width, depth], t * 4)
    offset += m
  })
}
