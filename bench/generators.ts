// Load generators: autocannon in this process (default, bench/autocannon.ts) and wrk as a child
// (optional, `--generator wrk`, bench/wrk.ts). Both take the same per-connection request plans and
// return the same GeneratorResult, with the generator's own CPU time.
import { runAutocannon } from './autocannon.ts'
import type { GeneratorResult, PlannedRequest } from './scenarios.ts'
import { runWrk } from './wrk.ts'

export type GeneratorName = 'autocannon' | 'wrk'

export interface RunOptions {
  url: string
  /**
   * One request list per connection; connection i loops over plans[i]. Plans beyond
   * `connections` are spares: wrk adds their conditional resources to its pool.
   */
  plans: PlannedRequest[][]
  connections: number
  durationSec: number
  expect: number[]
  /** Current ETag per conditional path; read before and updated during the run. */
  etags: Map<string, string>
  signal: AbortSignal
  /** Core for a generator child process (wrk), or null. */
  core: number | null
}

export function runGenerator(name: GeneratorName, options: RunOptions): Promise<GeneratorResult> {
  return name === 'wrk' ? runWrk(options) : runAutocannon(options)
}
