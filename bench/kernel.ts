// Micro-benchmark of the WASM kernel against the plain TypeScript reference, in one process:
// rows/s per model and batch size. `bun bench/kernel.ts` prints a table; `runKernelBench` returns data.
import { join } from 'node:path'
import { type CompiledNet, type DenseLayer, type Fill, Kernel, fillFrom } from '../src/inference/kernel.ts'
import { type MlpModel, mlpLayers } from '../src/inference/model-file.ts'
import { compileReference } from './reference.ts'
import { mulberry32 as prng } from './prng.ts'

/**
 * Where a batch's inputs come from: `rows` copies number[][] row by row (what a parsed JSON request
 * holds); `packed` copies one ready Float64Array, so the time is almost all arithmetic.
 */
export type InputSource = 'rows' | 'packed'

export interface KernelBenchOptions {
  batches?: number[]
  inputs?: InputSource[]
  /** Measured time per case and implementation (split over rounds), after warm-up. */
  seconds?: number
  warmupSeconds?: number
}

export interface KernelBenchResult {
  model: string
  batch: number
  input: InputSource
  kernelRowsPerSec: number
  typescriptRowsPerSec: number
  /** kernel / typescript */
  speedup: number
}

interface BenchModel {
  name: string
  layers: DenseLayer[]
}


async function benchModels(): Promise<BenchModel[]> {
  const mlp: MlpModel = await Bun.file(join(import.meta.dir, '../test/fixtures/models/diabetes-mlp.json')).json()
  const rand = prng(256)
  const linear: DenseLayer = {
    weights: Array.from({ length: 256 }, () => [rand() * 2 - 1]),
    bias: [0.5],
    activation: 'identity',
  }
  return [
    { name: 'diabetes-mlp (10→32→16→1)', layers: mlpLayers(mlp) },
    { name: 'linear-256', layers: [linear] },
  ]
}

/** Calls of `run` per second over about `seconds`. */
function rate(run: () => void, seconds: number): number {
  const start = Bun.nanoseconds()
  const end = start + seconds * 1e9
  let calls = 0
  for (; Bun.nanoseconds() < end; calls++) run()
  return calls / ((Bun.nanoseconds() - start) / 1e9)
}

const ROUNDS = 5

const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]!

/**
 * Median calls/s of each function after a warm-up: they take turns over ROUNDS short rounds, so a
 * noisy neighbour slows both rather than whichever happened to be running at the time.
 */
function compareRates(runs: (() => void)[], seconds: number, warmup: number): number[] {
  for (const run of runs) rate(run, warmup)
  const samples = runs.map(() => [] as number[])
  for (let round = 0; round < ROUNDS; round++) runs.forEach((run, i) => samples[i]!.push(rate(run, seconds / ROUNDS)))
  return samples.map(median)
}

/** Largest |a - b| relative to b's largest magnitude (a row's own value may cancel to ~0). */
function largestError(a: Float64Array, b: Float64Array): number {
  let error = 0
  let scale = 0
  for (let i = 0; i < a.length; i++) {
    error = Math.max(error, Math.abs(a[i]! - b[i]!))
    scale = Math.max(scale, Math.abs(b[i]!))
  }
  return error / scale
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<KernelBenchResult[]> {
  const { batches = [1, 100, 10_000], inputs = ['rows', 'packed'], seconds = 0.5, warmupSeconds = 0.1 } = opts
  const kernel = await Kernel.load()
  const results: KernelBenchResult[] = []
  for (const model of await benchModels()) {
    const nets: [CompiledNet, CompiledNet] = [kernel.compile(model.layers), compileReference(model.layers)]
    const nIn = nets[0].nIn
    const rand = prng(nIn)
    for (const batch of batches) {
      const rows = Array.from({ length: batch }, () => Array.from({ length: nIn }, () => rand() * 4 - 2))
      const packed = Float64Array.from(rows.flat())
      for (const input of inputs) {
        const fill: Fill = input === 'rows' ? fillFrom(rows) : (x, first, count) => x.set(packed.subarray(first * nIn, (first + count) * nIn))
        // Benchmarking wrong code is worse than no benchmark.
        const error = largestError(nets[0].run(batch, fill), nets[1].run(batch, fill))
        if (!(error <= 1e-9)) throw new Error(`${model.name}: kernel and reference differ by ${error} (relative)`)
        const [kernelRate, typescriptRate] = compareRates(nets.map((net) => () => net.run(batch, fill)), seconds, warmupSeconds).map((r) => r * batch) as [number, number]
        results.push({
          model: model.name,
          batch,
          input,
          kernelRowsPerSec: kernelRate,
          typescriptRowsPerSec: typescriptRate,
          speedup: kernelRate / typescriptRate,
        })
      }
    }
    kernel.release(nets[0])
  }
  return results
}

if (import.meta.main) {
  const results = await runKernelBench()
  const perSec = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`)
  console.table(results.map((r) => ({
    model: r.model,
    batch: r.batch,
    input: r.input,
    'kernel rows/s': perSec(r.kernelRowsPerSec),
    'typescript rows/s': perSec(r.typescriptRowsPerSec),
    speedup: `${r.speedup.toFixed(2)}x`,
  })))
}
