// The benchmarks that are not HTTP scenarios, run after them with baselines of their own: the
// sensor fan-out (service vs a bare Bun.serve pub/sub relay, in separate processes) and the
// in-process WASM kernel vs plain TypeScript.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runFanoutBench, table as fanoutTable } from './fanout.ts'
import { runKernelBench } from './kernel.ts'
import type { Options } from './options.ts'
import { resultsDir } from './results.ts'

/** Runs the extras the options select; answers what failed. */
export async function runExtras(options: Options): Promise<string[]> {
  const failures: string[] = []
  if (options.extras.has('fanout')) failures.push(...await fanout(options))
  if (options.extras.has('kernel')) failures.push(...await kernel(options))
  return failures
}

async function fanout(options: Options): Promise<string[]> {
  const failures: string[] = []
  console.log('\n== sensor fan-out: service vs a bare Bun.serve pub/sub relay (WebSocket publisher, fixed rate and full speed)')
  const result = await runFanoutBench({
    subscribers: options.smoke ? [100] : [100, 1000], durationSec: options.smoke ? 0.5 : 2, rate: 200, window: 64, via: 'ws',
    log: (line) => console.log(line),
  })
  console.log(`\n${fanoutTable(result)}`)
  for (const run of result.runs) {
    if (run.completeness < 1 || Object.keys(run.closes).length > 0) {
      failures.push(`fanout ${run.target} ${run.subscribers} ${run.mode}: completeness ${run.completeness.toFixed(3)}, closes ${JSON.stringify(run.closes)}`)
    }
  }
  if (!options.smoke) writeFileSync(join(resultsDir, 'fanout-latest.json'), `${JSON.stringify(result, null, 2)}\n`)
  if (options.check) for (const r of result.ratios) if (r.ratio < 0.8) failures.push(`fanout ${r.subscribers} ${r.mode}: ${r.ratio.toFixed(2)} of the relay, below 0.8`)
  return failures
}

async function kernel(options: Options): Promise<string[]> {
  console.log('\n== WebAssembly kernel vs plain TypeScript, in process (rows/s)')
  const rows = await runKernelBench(options.smoke
    ? { batches: [1, 100], inputs: ['rows'], seconds: 0.05, warmupSeconds: 0.02 }
    : { batches: [1, 100, 10_000], inputs: ['rows', 'packed'], seconds: 0.25, warmupSeconds: 0.1 })
  const perSec = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`)
  console.table(rows.map((r) => ({ model: r.model, batch: r.batch, input: r.input, kernel: perSec(r.kernelRowsPerSec), typescript: perSec(r.typescriptRowsPerSec), speedup: `${r.speedup.toFixed(2)}x` })))
  if (!options.smoke) writeFileSync(join(resultsDir, 'kernel-latest.json'), `${JSON.stringify(rows, null, 2)}\n`)
  return rows.some((r) => !(r.kernelRowsPerSec > 0)) ? ['kernel: a case produced no rows'] : []
}
