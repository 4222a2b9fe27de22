// The kernel's linear memory as a heap: a first-fit allocator over what the module leaves free,
// growing the memory (up to a limit) when nothing fits. kernel.ts owns what goes where; this only
// hands out and takes back byte ranges.

export const PAGE_BYTES = 65536

/**
 * Most linear memory one kernel grows to (weights of every model served, plus the scratch of the
 * batch running): half of wasm32's 4 GiB, so running out is a KernelMemoryError naming this limit
 * well before the engine (or the host) refuses to grow.
 */
export const KERNEL_MEMORY_LIMIT = 2 * 1024 ** 3

/** Growing the kernel's memory by `bytes` would pass its limit (or the host refused to grow it). */
export class KernelMemoryError extends Error {
  override name = 'KernelMemoryError'
  constructor(readonly bytes: number, readonly limit: number) {
    super(`needs ${mib(bytes)} more of the kernel's memory, which is limited to ${mib(limit)}`)
  }
}

const mib = (bytes: number) => `${Math.ceil(bytes / 2 ** 20)} MiB`
const ALIGN = 16

export const align = (bytes: number): number => Math.ceil(bytes / ALIGN) * ALIGN

interface Block {
  ptr: number
  size: number
}

/**
 * First-fit allocator over [heapBase, memory end) with coalescing free list, growing the memory
 * when nothing fits. Nets come and go with hot reloads, so freed space must be found again.
 */
export class Heap {
  /** Free blocks sorted by address, never adjacent (adjacent ones are merged). */
  private readonly free: Block[] = []
  private end: number

  constructor(private readonly memory: WebAssembly.Memory, base: number, private readonly limit: number, private readonly onGrow: () => void) {
    const start = align(base)
    this.end = memory.buffer.byteLength
    if (this.end > start) this.free.push({ ptr: start, size: this.end - start })
  }

  alloc(bytes: number): number {
    const size = align(bytes)
    const i = this.free.findIndex((block) => block.size >= size)
    if (i < 0) return this.growFor(size)
    const block = this.free[i]!
    const ptr = block.ptr
    if (block.size === size) this.free.splice(i, 1)
    else {
      block.ptr += size
      block.size -= size
    }
    return ptr
  }

  release(ptr: number, bytes: number): void {
    const size = align(bytes)
    let i = this.free.findIndex((block) => block.ptr > ptr)
    if (i < 0) i = this.free.length
    const prev = this.free[i - 1]
    const next = this.free[i]
    if (prev && prev.ptr + prev.size === ptr) {
      prev.size += size
      if (next && prev.ptr + prev.size === next.ptr) {
        prev.size += next.size
        this.free.splice(i, 1)
      }
    } else if (next && ptr + size === next.ptr) {
      next.ptr = ptr
      next.size += size
    } else {
      this.free.splice(i, 0, { ptr, size })
    }
  }

  private growFor(size: number): number {
    const last = this.free.at(-1)
    // A free block touching the end of memory counts toward the request: grow only the difference.
    const tail = last && last.ptr + last.size === this.end ? last : undefined
    const pages = Math.ceil((size - (tail?.size ?? 0)) / PAGE_BYTES)
    // Refused before any bookkeeping changes, so the heap stays as it was.
    if (this.end + pages * PAGE_BYTES > this.limit) throw new KernelMemoryError(pages * PAGE_BYTES, this.limit)
    try {
      this.memory.grow(pages)
    } catch (error) {
      if (!(error instanceof RangeError)) throw error
      throw new KernelMemoryError(pages * PAGE_BYTES, this.limit)
    }
    this.onGrow()
    const ptr = tail ? tail.ptr : this.end
    const added = pages * PAGE_BYTES
    this.end += added
    if (tail) this.free.pop()
    const rest = (tail?.size ?? 0) + added - size
    if (rest > 0) this.free.push({ ptr: ptr + size, size: rest })
    return ptr
  }
}
