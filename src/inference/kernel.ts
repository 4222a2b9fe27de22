// The WebAssembly boundary of inference: instantiates wasm/build/kernel.wasm and owns its linear
// memory — where compiled weights live, the scratch region batches run in, and every typed-array
// view over it. Nothing else in the service touches the module's exports or raw pointers.
import wasmPath from '../../wasm/build/kernel.wasm' with { type: 'file' }
import { align, Heap, KERNEL_MEMORY_LIMIT, PAGE_BYTES } from './kernel-heap'
import { type Activation, checkLayers, type DenseLayer } from './kernel-layers'
import { layoutTrees, MODES, writeTrees } from './kernel-trees'
import type { TreesSpec } from './model-trees'

export { KERNEL_MEMORY_LIMIT, KernelMemoryError } from './kernel-heap'
export { ACTIVATIONS, type Activation, type DenseLayer, ModelShapeError } from './kernel-layers'

/**
 * Writes `count` input rows, starting at batch row `first`, into `input` (count*nIn values,
 * row-major). The view is only valid during the call, and the callback must not call the kernel.
 */
export type Fill = (input: Float64Array, first: number, count: number) => void

/** A network whose weights live in kernel memory until `Kernel.release`. */
export interface CompiledNet {
  readonly nIn: number
  readonly nOut: number
  /**
   * Runs `rows` rows through the net, asking `fill` for the inputs one chunk of rows at a time (so
   * a chunk is still in cache when the kernel reads it). Returns a fresh array of rows*nOut outputs
   * (row-major) that the caller owns.
   */
  run(rows: number, fill: Fill): Float64Array
}

/** A Fill copying from arrays of numbers, e.g. a parsed JSON request's rows (each of length nIn). */
export function fillFrom(rows: readonly (readonly number[])[]): Fill {
  return (input, first, count) => {
    const nIn = input.length / count
    // An indexed loop: TypedArray.set from a plain array is several times slower in JSC.
    for (let r = 0, o = 0; r < count; r++) {
      const row = rows[first + r]!
      if (row.length !== nIn) throw new RangeError(`row ${first + r} has ${row.length} values, expected ${nIn}`)
      for (let i = 0; i < nIn; i++) input[o++] = row[i]!
    }
  }
}

/** out = x·w + b over `rows` rows, then v > 0 ? v : 0 where relu is 1; see wasm/assembly/index.ts for w's layout. */
type DenseFn = (x: number, rows: number, nIn: number, w: number, b: number, nOut: number, out: number, relu: number) => void

interface KernelExports {
  readonly memory: WebAssembly.Memory
  heapBase(): number
  dense: DenseFn
  denseNarrow: DenseFn
  tanh(p: number, n: number): void
  sigmoid(p: number, n: number): void
  softmax(p: number, rows: number, cols: number): void
  normalize(p: number, rows: number, cols: number): void
  sigmoid32(p: number, n: number): void
  softmax32(p: number, rows: number, cols: number): void
  trees(x: number, rows: number, nIn: number, nodes: number, vidx: number, values: number,
    list: number, nTrees: number, base: number, nOut: number, out: number, mode: number, f32acc: number, mean: number): void
}

// Scratch per chunk of rows: small enough that a chunk's inputs are still in L2 when dense reads them.
const CHUNK_BYTES = 256 * 1024

// Layers of WIDE or more outputs run `dense` (SIMD across outputs: weight rows and bias padded to a
// multiple of 4); narrower ones `denseNarrow`, over transposed weights, where padding would be most lanes.
const WIDE = 4
const strideOf = (nOut: number): number => (nOut >= WIDE ? Math.ceil(nOut / 4) * 4 : nOut)

interface PlacedLayer {
  nIn: number
  nOut: number
  /** Byte offsets of the weights ([nIn][stride] for `dense`, [nOut][nIn] for `denseNarrow`) and the bias ([stride]). */
  w: number
  b: number
  dense: DenseFn
  /** 1 for relu, which both dense kernels apply themselves; other activations run as a pass of their own. */
  relu: number
  act: Activation
}

let modulePromise: Promise<WebAssembly.Module> | undefined

/** One instance of the kernel with its own memory. Single-threaded: one `run` at a time. */
export class Kernel {
  private f64: Float64Array<ArrayBuffer>
  private readonly heap: Heap
  private scratchPtr = 0
  private scratchBytes = 0
  private running = false
  /** The last input view `inputs` made, reused while the memory and the rows' place are the same (one-row requests). */
  private view: Float64Array<ArrayBuffer> | null = null
  private readonly live = new Map<Net | TreeNet, { ptr: number; bytes: number }>()

  private constructor(private readonly wasm: KernelExports, memoryLimit: number) {
    this.f64 = new Float64Array(wasm.memory.buffer)
    // Growth detaches the old ArrayBuffer, so every cached view is rebuilt right after it.
    this.heap = new Heap(wasm.memory, wasm.heapBase(), memoryLimit, () => {
      this.f64 = new Float64Array(wasm.memory.buffer)
      this.view = null
    })
  }

  /** The `length` values from byte `ptr` of the kernel's memory, for a fill to write a chunk's inputs into. */
  private inputs(ptr: number, length: number): Float64Array {
    const view = this.view
    if (view !== null && view.byteOffset === ptr && view.length === length) return view
    return (this.view = this.f64.subarray(ptr / 8, ptr / 8 + length))
  }

  /** Copies `length` outputs from byte `ptr` into `result` at `at`: a few values by a loop, which costs less than a view. */
  private outputs(ptr: number, length: number, result: Float64Array, at: number): void {
    const f64 = this.f64
    const from = ptr / 8
    if (length > 64) result.set(f64.subarray(from, from + length), at)
    else for (let i = 0; i < length; i++) result[at + i] = f64[from + i]!
  }

  /**
   * Instantiates a fresh kernel (the compiled module is shared between instances). Compiling a net
   * or running a batch that needs memory past `memoryLimit` throws KernelMemoryError.
   */
  static async load({ memoryLimit = KERNEL_MEMORY_LIMIT }: { memoryLimit?: number } = {}): Promise<Kernel> {
    modulePromise ??= Bun.file(wasmPath).arrayBuffer().then((bytes) => WebAssembly.compile(bytes)).catch((error: unknown) => {
      // Let a later call retry rather than remember the failure forever.
      modulePromise = undefined
      throw error
    })
    const instance = await WebAssembly.instantiate(await modulePromise, {})
    const exports = instance.exports as Record<string, unknown>
    for (const name of ['heapBase', 'dense', 'denseNarrow', 'tanh', 'sigmoid', 'softmax', 'normalize', 'sigmoid32', 'softmax32', 'trees']) {
      if (typeof exports[name] !== 'function') throw new Error(`${wasmPath} does not export ${name}`)
    }
    if (!(exports.memory instanceof WebAssembly.Memory)) throw new Error(`${wasmPath} does not export its memory`)
    return new Kernel(exports as unknown as KernelExports, memoryLimit)
  }

  /** Bytes of linear memory currently reserved (weights, scratch and free space). */
  get memoryBytes(): number {
    return this.wasm.memory.buffer.byteLength
  }

  /** Number of compiled nets not yet released. */
  get liveNets(): number {
    return this.live.size
  }

  /** Checks the layers fit together in memory and copies their weights, laid out for their dense kernel, into kernel memory once. */
  compile(layers: readonly DenseLayer[]): CompiledNet {
    const shapes = checkLayers(layers)
    let bytes = 0
    const offsets = shapes.map(({ nIn, nOut }) => {
      const w = bytes
      const b = w + nIn * strideOf(nOut) * 8
      bytes = align(b + strideOf(nOut) * 8)
      return { w, b }
    })
    const ptr = this.heap.alloc(bytes)
    const f64 = this.f64
    // Zero the padding: the region may hold a released net's values.
    f64.fill(0, ptr / 8, (ptr + bytes) / 8)
    const placed = layers.map((layer, k): PlacedLayer => {
      const { nIn, nOut } = shapes[k]!
      const w = ptr + offsets[k]!.w
      const b = ptr + offsets[k]!.b
      const wide = nOut >= WIDE
      const stride = strideOf(nOut)
      for (let i = 0; i < nIn; i++) {
        const row = layer.weights[i]!
        for (let j = 0; j < nOut; j++) f64[w / 8 + (wide ? i * stride + j : j * nIn + i)] = row[j]!
      }
      f64.set(layer.bias, b / 8)
      const dense = wide ? this.wasm.dense : this.wasm.denseNarrow
      return { nIn, nOut, w, b, dense, relu: layer.activation === 'relu' ? 1 : 0, act: layer.activation }
    })
    const net = new Net(placed, (rows, fill) => this.execute(net, rows, fill))
    this.live.set(net, { ptr, bytes })
    return net
  }

  /**
   * Copies a tree ensemble (checked by parseModel) into kernel memory once, as flat node arrays
   * (see kernel-trees.ts); `nIn` is its number of features.
   */
  compileTrees(spec: TreesSpec, nIn: number): CompiledNet {
    const layout = layoutTrees(spec)
    const ptr = this.heap.alloc(layout.bytes)
    writeTrees(this.wasm.memory.buffer, ptr, spec, layout)
    const at = (offset: number) => ptr + offset
    const net: TreeNet = {
      nIn,
      nOut: spec.outputs,
      args: [at(layout.node), at(layout.vidx), at(layout.values), at(layout.trees), spec.trees.length, at(layout.base), spec.outputs],
      mode: MODES[spec.comparison],
      f32acc: spec.accumulate === 'f32' ? 1 : 0,
      mean: spec.aggregate === 'mean' ? 1 : 0,
      link: spec.link,
      chunkRows: Math.max(4, Math.floor(CHUNK_BYTES / ((nIn + spec.outputs) * 8) / 4) * 4),
      run: (rows, fill) => this.executeTrees(net, rows, fill),
    }
    this.live.set(net, { ptr, bytes: layout.bytes })
    return net
  }

  /** Frees a net's weights for reuse; running it afterwards throws. Releasing twice is a no-op. */
  release(net: CompiledNet): void {
    const region = this.live.get(net as Net)
    if (!region) return
    this.live.delete(net as Net)
    this.heap.release(region.ptr, region.bytes)
  }

  /** `rows` outputs of a placed net (dense or trees), which `run` fills in: one batch at a time. */
  private batch(net: Net | TreeNet, rows: number, run: (result: Float64Array) => void): Float64Array {
    if (!this.live.has(net)) throw new Error('this net was released or belongs to another kernel')
    if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError(`rows must be a non-negative integer, got ${rows}`)
    if (this.running) throw new Error('the kernel is already running a batch (fill must not call the kernel)')
    const result = new Float64Array(rows * net.nOut)
    if (rows === 0) return result
    this.running = true
    try {
      run(result)
      return result
    } finally {
      this.running = false
    }
  }

  /** Runs a placed net through the scratch region chunk by chunk; see `CompiledNet.run`. */
  private execute(net: Net, rows: number, fill: Fill): Float64Array {
    return this.batch(net, rows, (result) => {
      const chunk = Math.min(rows, net.chunkRows)
      // Layers ping-pong between two regions: A holds the inputs and the outputs of layers 1, 3, …; B those of layers 0, 2, ….
      const bytesA = align(chunk * net.widthA * 8)
      this.ensureScratch(bytesA + chunk * net.widthB * 8)
      const wasm = this.wasm
      for (let first = 0; first < rows; first += chunk) {
        const count = Math.min(chunk, rows - first)
        let src = this.scratchPtr
        let dst = src + bytesA
        fill(this.inputs(src, count * net.nIn), first, count)
        for (const layer of net.layers) {
          layer.dense(src, count, layer.nIn, layer.w, layer.b, layer.nOut, dst, layer.relu)
          const n = count * layer.nOut
          switch (layer.act) {
            case 'tanh': wasm.tanh(dst, n); break
            case 'sigmoid': wasm.sigmoid(dst, n); break
            case 'softmax': wasm.softmax(dst, count, layer.nOut); break
            case 'relu': case 'identity': break
          }
          ;[src, dst] = [dst, src]
        }
        this.outputs(src, count * net.nOut, result, first * net.nOut)
      }
    })
  }

  /** Runs a tree ensemble chunk by chunk: inputs, then traversal, mean and base, then the link, all in the kernel. */
  private executeTrees(net: TreeNet, rows: number, fill: Fill): Float64Array {
    return this.batch(net, rows, (result) => {
      const chunk = Math.min(rows, net.chunkRows)
      const inBytes = align(chunk * net.nIn * 8)
      this.ensureScratch(inBytes + chunk * net.nOut * 8)
      const wasm = this.wasm
      const [nodes, vidx, values, list, nTrees, base, nOut] = net.args
      const src = this.scratchPtr
      const dst = src + inBytes
      for (let first = 0; first < rows; first += chunk) {
        const count = Math.min(chunk, rows - first)
        fill(this.inputs(src, count * net.nIn), first, count)
        wasm.trees(src, count, net.nIn, nodes, vidx, values, list, nTrees, base, nOut, dst, net.mode, net.f32acc, net.mean)
        // Summed in float32, scored in float32: XGBoost's sigmoid and softmax run in float32.
        switch (net.link) {
          case 'sigmoid': (net.f32acc ? wasm.sigmoid32 : wasm.sigmoid)(dst, count * nOut); break
          case 'softmax': (net.f32acc ? wasm.softmax32 : wasm.softmax)(dst, count, nOut); break
          case 'normalize': wasm.normalize(dst, count, nOut); break
          case 'identity': break
        }
        this.outputs(dst, count * nOut, result, first * nOut)
      }
    })
  }

  /** Keeps one scratch region for all nets, replaced by a larger one only when a batch needs it. */
  private ensureScratch(bytes: number): void {
    if (bytes <= this.scratchBytes) return
    if (this.scratchBytes > 0) this.heap.release(this.scratchPtr, this.scratchBytes)
    const size = Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES
    this.scratchBytes = 0
    this.scratchPtr = this.heap.alloc(size)
    this.scratchBytes = size
  }
}

/** A tree ensemble placed in kernel memory: the pointers and counts `trees` takes, in its order. */
interface TreeNet extends CompiledNet {
  readonly args: readonly [number, number, number, number, number, number, number]
  readonly mode: number
  readonly f32acc: number
  readonly mean: number
  readonly link: TreesSpec['link']
  readonly chunkRows: number
}

class Net implements CompiledNet {
  readonly nIn: number
  readonly nOut: number
  /** Widest row held in scratch region A (the input, layers 1, 3, …) and in B (layers 0, 2, …). */
  readonly widthA: number
  readonly widthB: number
  /** Rows per chunk: a multiple of 4 (dense's unroll) whose scratch fits in about CHUNK_BYTES. */
  readonly chunkRows: number

  constructor(readonly layers: readonly PlacedLayer[], readonly run: CompiledNet['run']) {
    this.nIn = layers[0]!.nIn
    this.nOut = layers.at(-1)!.nOut
    this.widthA = Math.max(this.nIn, ...layers.filter((_, k) => k % 2 === 1).map((l) => l.nOut))
    this.widthB = Math.max(...layers.filter((_, k) => k % 2 === 0).map((l) => l.nOut))
    this.chunkRows = Math.max(4, Math.floor(CHUNK_BYTES / ((this.widthA + this.widthB) * 8) / 4) * 4)
  }
}
