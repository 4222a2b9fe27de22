// Micro-benchmark of the WASM kernel against the plain TypeScript reference, in one process:
// rows/s per model and batch size (dense nets, and the 100-tree XGBoost booster against the plain
// TypeScript traversal), and the kernel's targets on the diabetes MLP and on the trees at batch 1 000.
// `bun bench/kernel.ts` prints both (`--check` exits 1 when a target is missed); `runKernelBench`,
// `runKernelTargets` and `runTreeTarget` return data.
import { join } from 'node:path'
import { type CompiledNet, type DenseLayer, type Fill, Kernel, fillFrom } from '../src/inference/kernel.ts'
import { fromXgboost } from '../src/inference/formats/xgboost.ts'
import { type MlpModel, mlpLayers, parseModel } from '../src/inference/model-file.ts'
import type { TreesSpec } from '../src/inference/model-trees.ts'
import { compileReference } from './reference.ts'
import { compileTreesReference } from './reference-trees.ts'
import { mulberry32 as prng } from './prng.ts'

/**
 * Where a batch's inputs come from: `rows` copies number[][] row by row (what a parsed JSON request
 * holds); `packed` copies one ready Float64Array, so the time is almost all arithmetic.
 */
export type InputSource = 'rows' | 'packed'

export interface KernelBenchOptions {
  batches?: number[]
  inputs?: InputSource[]
  /** Measured time per case and implementation (split into short turns), after warm-up. */
  seconds?: number
  warmupSeconds?: number
}

export interface KernelBenchResult {
  model: string
  batch: number
  input: InputSource
  kernelRowsPerSec: number
  typescriptRowsPerSec: number
  /** kernel / typescript, the median of the ratios within each round */
  speedup: number
}

/** What the kernel must reach on the diabetes MLP, both measured in one run. */
export const KERNEL_TARGETS = {
  /** kernel rows/s ÷ TypeScript rows/s at batch 10 000, at least */
  speedup: 5,
  /** trees: kernel rows/s ÷ the TypeScript traversal's at batch 1 000, at least */
  treeSpeedup: 2,
  /** kernel time per row at batch 10 000 ÷ at batch 100, at most: big batches are never slower per row */
  perRowRatio: 1,
} as const

export interface KernelTargetOptions {
  /** Measured time for the four cases together, after warm-up. */
  seconds?: number
  warmupSeconds?: number
  input?: InputSource
}

export interface KernelTargets {
  model: string
  input: InputSource
  /** Median rows/s over the rounds. */
  kernel100: number
  kernel10k: number
  typescript100: number
  typescript10k: number
  /** kernel / TypeScript at batch 10 000 (median of per-round ratios); passes at ≥ KERNEL_TARGETS.speedup */
  speedup10k: number
  /** kernel per-row time at 10 000 / at 100 (median of per-round ratios); passes at ≤ KERNEL_TARGETS.perRowRatio */
  perRowRatio: number
  pass: { speedup: boolean; perRow: boolean }
  /** One line per missed target, empty when both pass: what `--check` gates on. */
  failures: string[]
}

interface BenchModel {
  name: string
  /** The kernel's net and the TypeScript reference of the same model. */
  nets(kernel: Kernel): [CompiledNet, CompiledNet]
}

const denseModel = (name: string, layers: DenseLayer[]): BenchModel => ({ name, nets: (kernel) => [kernel.compile(layers), compileReference(layers)] })

/** The 100-tree booster of the tree scenarios, as the service converts it. */
async function treeModel(): Promise<BenchModel> {
  const raw: unknown = await Bun.file(join(import.meta.dir, 'models/diabetes-xgb.xgb.json')).json()
  const spec = parseModel(fromXgboost(raw, 'diabetes-xgb', '1'), 'diabetes-xgb') as TreesSpec & { features: readonly string[] }
  const n = spec.features.length
  return { name: 'diabetes-xgb (100 trees)', nets: (kernel) => [kernel.compileTrees(spec, n), compileTreesReference(spec, n)] }
}

async function benchModels(): Promise<BenchModel[]> {
  const mlp: MlpModel = await Bun.file(join(import.meta.dir, '../test/fixtures/models/diabetes-mlp.json')).json()
  const rand = prng(256)
  const linear: DenseLayer = {
    weights: Array.from({ length: 256 }, () => [rand() * 2 - 1]),
    bias: [0.5],
    activation: 'identity',
  }
  return [denseModel('diabetes-mlp (10→32→16→1)', mlpLayers(mlp)), denseModel('linear-256', [linear]), await treeModel()]
}

interface Case {
  batch: number
  run: () => void
}

/** About this long per sample: several kernel calls at batch 10 000, one TypeScript call. */
const SAMPLE_SECONDS = 0.005
const MIN_ROUNDS = 5

/** Rows/s over at least one call and about SAMPLE_SECONDS. */
function sample({ batch, run }: Case): number {
  const start = Bun.nanoseconds()
  const end = start + SAMPLE_SECONDS * 1e9
  let calls = 0
  do {
    run()
    calls++
  } while (Bun.nanoseconds() < end)
  return (calls * batch) / ((Bun.nanoseconds() - start) / 1e9)
}

/**
 * Rows/s samples of every case, one short sample each per round, until `seconds` have passed. This
 * machine's speed changes by up to 2x every few hundred ms (its neighbours), so only samples taken close
 * together compare: rounds are short, and alternate their order so neighbouring cases stay neighbours.
 */
function sampleRates(cases: Case[], seconds: number, warmup: number): number[][] {
  for (const c of cases) {
    const end = Bun.nanoseconds() + warmup * 1e9
    do c.run()
    while (Bun.nanoseconds() < end)
  }
  const samples = cases.map(() => [] as number[])
  const end = Bun.nanoseconds() + seconds * 1e9
  for (let round = 0; round < MIN_ROUNDS || Bun.nanoseconds() < end; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = round % 2 === 0 ? k : cases.length - 1 - k
      samples[i]!.push(sample(cases[i]!))
    }
  }
  return samples
}

const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]!

/** Median over rounds of a[k] / b[k]: each ratio compares two samples taken a few ms apart. */
const pairedRatio = (a: number[], b: number[]) => median(a.map((x, k) => x / b[k]!))

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

/** The kernel and the reference on one batch of seeded inputs, checked against each other before timing. */
function prepare(name: string, nets: [CompiledNet, CompiledNet], batch: number, input: InputSource): [Case, Case] {
  const nIn = nets[0].nIn
  const rand = prng(nIn)
  // Within the trees' range too: the diabetes features are scaled to about ±0.1.
  const rows = Array.from({ length: batch }, () => Array.from({ length: nIn }, () => (rand() * 4 - 2) * (name.includes('trees') ? 0.05 : 1)))
  const packed = Float64Array.from(rows.flat())
  const fill: Fill = input === 'rows' ? fillFrom(rows) : (x, first, count) => x.set(packed.subarray(first * nIn, (first + count) * nIn))
  // Benchmarking wrong code is worse than no benchmark.
  const error = largestError(nets[0].run(batch, fill), nets[1].run(batch, fill))
  if (!(error <= 1e-9)) throw new Error(`${name}: kernel and reference differ by ${error} (relative)`)
  return [{ batch, run: () => nets[0].run(batch, fill) }, { batch, run: () => nets[1].run(batch, fill) }]
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<KernelBenchResult[]> {
  const { batches = [1, 100, 10_000], inputs = ['rows', 'packed'], seconds = 0.5, warmupSeconds = 0.1 } = opts
  const kernel = await Kernel.load()
  const results: KernelBenchResult[] = []
  for (const model of await benchModels()) {
    const nets = model.nets(kernel)
    for (const batch of [...new Set([...batches, ...(model.name.includes('trees') ? [1000] : [])])]) {
      for (const input of inputs) {
        const [k, t] = sampleRates(prepare(model.name, nets, batch, input), 2 * seconds, warmupSeconds) as [number[], number[]]
        results.push({
          model: model.name,
          batch,
          input,
          kernelRowsPerSec: median(k),
          typescriptRowsPerSec: median(t),
          speedup: pairedRatio(k, t),
        })
      }
    }
    kernel.release(nets[0])
  }
  return results
}

/** Measures the diabetes MLP at batch 100 and 10 000, kernel and TypeScript taking turns, against KERNEL_TARGETS. */
export async function runKernelTargets(opts: KernelTargetOptions = {}): Promise<KernelTargets> {
  const { seconds = 3, warmupSeconds = 0.3, input = 'packed' } = opts
  const kernel = await Kernel.load()
  const model = (await benchModels())[0]!
  const nets = model.nets(kernel)
  const [k100, t100] = prepare(model.name, nets, 100, input)
  const [k10k, t10k] = prepare(model.name, nets, 10_000, input)
  // This order puts each pair a ratio needs side by side: TS 10k next to kernel 10k, kernel 10k next to kernel 100.
  const [ts100, ts10k, kern10k, kern100] = sampleRates([t100, t10k, k10k, k100], seconds, warmupSeconds) as [number[], number[], number[], number[]]
  kernel.release(nets[0])
  const speedup10k = pairedRatio(kern10k, ts10k)
  // Time per row is 1 / rate, so time(10 000) / time(100) = rate(100) / rate(10 000).
  const perRowRatio = pairedRatio(kern100, kern10k)
  const pass = { speedup: speedup10k >= KERNEL_TARGETS.speedup, perRow: perRowRatio <= KERNEL_TARGETS.perRowRatio }
  const failures: string[] = []
  if (!pass.speedup) failures.push(`kernel: ${speedup10k.toFixed(2)}x TypeScript at batch 10 000, below ${KERNEL_TARGETS.speedup}x`)
  if (!pass.perRow) failures.push(`kernel: a row costs ${perRowRatio.toFixed(3)}x as much at batch 10 000 as at 100, above ${KERNEL_TARGETS.perRowRatio}`)
  return {
    model: model.name,
    input,
    kernel100: median(kern100),
    kernel10k: median(kern10k),
    typescript100: median(ts100),
    typescript10k: median(ts10k),
    speedup10k,
    perRowRatio,
    pass,
    failures,
  }
}

export interface TreeTarget {
  model: string
  input: InputSource
  kernel1k: number
  typescript1k: number
  /** kernel / TypeScript traversal at batch 1 000 (median of per-round ratios); passes at ≥ KERNEL_TARGETS.treeSpeedup */
  speedup1k: number
  pass: boolean
}

/** The 100-tree booster at batch 1 000, kernel and TypeScript traversal taking turns, against KERNEL_TARGETS.treeSpeedup. */
export async function runTreeTarget(opts: KernelTargetOptions = {}): Promise<TreeTarget> {
  const { seconds = 3, warmupSeconds = 0.3, input = 'packed' } = opts
  const kernel = await Kernel.load()
  const model = await treeModel()
  const nets = model.nets(kernel)
  const [k, ts] = sampleRates(prepare(model.name, nets, 1000, input), seconds, warmupSeconds) as [number[], number[]]
  kernel.release(nets[0])
  const speedup1k = pairedRatio(k, ts)
  return { model: model.name, input, kernel1k: median(k), typescript1k: median(ts), speedup1k, pass: speedup1k >= KERNEL_TARGETS.treeSpeedup }
}

if (import.meta.main) {
  const perSec = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`)
  console.table((await runKernelBench()).map((r) => ({
    model: r.model,
    batch: r.batch,
    input: r.input,
    'kernel rows/s': perSec(r.kernelRowsPerSec),
    'typescript rows/s': perSec(r.typescriptRowsPerSec),
    speedup: `${r.speedup.toFixed(2)}x`,
  })))
  const t = await runKernelTargets()
  const verdict = (ok: boolean) => (ok ? 'pass' : 'FAIL')
  console.log(`\ntargets, ${t.model}, ${t.input} inputs, rows/s: kernel ${perSec(t.kernel100)} at 100, ${perSec(t.kernel10k)} at 10 000; typescript ${perSec(t.typescript100)} at 100, ${perSec(t.typescript10k)} at 10 000`)
  console.log(`  kernel / typescript at 10 000: ${t.speedup10k.toFixed(2)}x (≥ ${KERNEL_TARGETS.speedup}x) ${verdict(t.pass.speedup)}`)
  console.log(`  per row, 10 000 / 100:        ${t.perRowRatio.toFixed(3)} (≤ ${KERNEL_TARGETS.perRowRatio}) ${verdict(t.pass.perRow)}`)
  const trees = await runTreeTarget()
  console.log(`\ntrees, ${trees.model}, ${trees.input} inputs, batch 1 000, rows/s: kernel ${perSec(trees.kernel1k)}, typescript ${perSec(trees.typescript1k)}`)
  console.log(`  kernel / typescript traversal: ${trees.speedup1k.toFixed(2)}x (≥ ${KERNEL_TARGETS.treeSpeedup}x) ${verdict(trees.pass)}`)
  if (process.argv.includes('--check') && (t.failures.length > 0 || !trees.pass)) process.exitCode = 1
}
