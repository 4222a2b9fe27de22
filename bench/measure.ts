// The HTTP scenarios against the service, the least-work reference and the ceiling: for each
// scenario and target a preflight request and a warm-up, then the measurement in rounds the three
// take turns in (with the CPU of server, generator and everything else, and a repeat when the host
// was noisy), added up per target; then service ÷ each reference.
import { runGenerator } from './generators.ts'
import type { Options } from './options.ts'
import { cpuSeconds, machineBusySeconds, type Server } from './processes.ts'
import { type Floor, GENERATOR_BOUND, NOISY, type ScenarioResult, type TargetMeasurement } from './report.ts'
import type { GeneratorResult, MeasureContext, PlannedRequest, Scenario, ScenarioContext } from './scenarios.ts'

/** Request plans beyond one per connection (see RunOptions.plans). */
export const SPARE_PLANS = 2
/** Other processes above this share of a core make a measurement worth repeating (see --retries). */
const REMEASURE_ABOVE = 0.3

/** How many rounds a scenario's measurement is split into: --rounds, each at least a second (wrk counts whole seconds). */
export function roundsOf(options: Pick<Options, 'rounds' | 'durationSec'>): number {
  return Math.max(1, Math.min(options.rounds, Math.floor(options.durationSec)))
}
const roundSec = (options: Pick<Options, 'rounds' | 'durationSec'>) => options.durationSec / roundsOf(options)

const seconds = (start: number) => (performance.now() - start) / 1000
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000

export interface ScenarioRun {
  options: Options
  service: Server
  leastWork: Server
  ceiling: Server
  context: ScenarioContext
  floors: Record<string, Floor>
  /** Core for a generator child process (wrk), or null. */
  generatorCore: number | null
  signal: AbortSignal
  /** performance.now() when the bench began: repeats that would overrun options.budgetSec are skipped. */
  runStart: number
}

/** When a service measurement ran, to cut the CPU profile per scenario. */
export interface ProfileWindow {
  name: string
  fromUs: number
  toUs: number
}

/** Every scenario of the options against the three targets, taking turns in short rounds. */
export async function runScenarios(run: ScenarioRun): Promise<{ results: ScenarioResult[]; profileWindows: ProfileWindow[] }> {
  const runner = new Runner(run)
  for (const [index, scenario] of run.options.scenarios.entries()) await runner.scenario(scenario, index)
  return { results: runner.results, profileWindows: runner.profileWindows }
}

type Load = (durationSec: number) => Promise<GeneratorResult>

/**
 * Measurements of one target in one scenario, taken as one: requests and times added up, CPU
 * shares weighted by time, p50 the median of the rounds' and p99 the worst.
 */
export function combined(rounds: readonly TargetMeasurement[]): TargetMeasurement {
  const sum = (of: (m: TargetMeasurement) => number) => rounds.reduce((total, m) => total + of(m), 0)
  const wallSec = sum((m) => m.wallSec)
  const requests = sum((m) => m.requests)
  const durationSec = sum((m) => m.durationSec)
  const statuses: Record<string, number> = {}
  for (const m of rounds) for (const [status, count] of Object.entries(m.statuses)) statuses[status] = (statuses[status] ?? 0) + count
  const p50s = rounds.map((m) => m.p50).sort((a, b) => a - b)
  return {
    requests, durationSec, wallSec, statuses,
    rps: requests / durationSec,
    p50: p50s[Math.floor((p50s.length - 1) / 2)]!,
    p99: Math.max(...rounds.map((m) => m.p99)),
    errors: sum((m) => m.errors),
    non2xx: sum((m) => m.non2xx),
    unexpected: sum((m) => m.unexpected),
    bytesPerResponse: sum((m) => m.bytesPerResponse * m.requests) / requests,
    generatorCpuSec: sum((m) => m.generatorCpuSec),
    serverCpu: sum((m) => m.serverCpu * m.wallSec) / wallSec,
    generatorCpu: sum((m) => m.generatorCpu * m.wallSec) / wallSec,
    otherCpu: sum((m) => m.otherCpu * m.wallSec) / wallSec,
  }
}

class Runner {
  readonly results: ScenarioResult[] = []
  readonly profileWindows: ProfileWindow[] = []
  private readonly etagsOf: Map<Server, Map<string, string>>
  private readonly slotOf: Map<Server, 'service' | 'leastWork' | 'ceiling'>

  constructor(private readonly run: ScenarioRun) {
    this.etagsOf = new Map([[run.service, new Map()], [run.leastWork, new Map()], [run.ceiling, new Map()]])
    this.slotOf = new Map([[run.service, 'service'], [run.leastWork, 'leastWork'], [run.ceiling, 'ceiling']])
  }

  /**
   * One scenario: each target checked and warmed up, then measured in `rounds` turns of
   * duration ÷ rounds each, the three taking turns (the order reversed every other round), so
   * that a host that speeds up or slows down over the scenario weighs on all three alike.
   */
  async scenario(scenario: Scenario, index: number): Promise<void> {
    const { options, service, leastWork, ceiling, context, floors, signal } = this.run
    // One plan per connection plus spares (see RunOptions.plans).
    const plans = Array.from({ length: options.connections + SPARE_PLANS }, (_, i) => scenario.connection(i, context))
    const result: ScenarioResult = {
      name: scenario.name, description: scenario.description, service: null, leastWork: null, ceiling: null,
      leastWorkRatio: Number.NaN, leastWorkCpuRatio: Number.NaN, ratio: Number.NaN, cpuRatio: Number.NaN,
      floor: floors[scenario.name] ?? null, failures: [],
    }
    this.results.push(result)
    const prefix = `[${index + 1}/${options.scenarios.length}] ${scenario.name}`
    // Least work in the middle, service and ceiling swapping ends from one scenario to the next.
    const order = index % 2 === 0 ? [service, leastWork, ceiling] : [ceiling, leastWork, service]
    const loads = new Map<Server, Load>()
    for (const target of order) {
      signal.throwIfAborted()
      await this.guarded(scenario, target, result, async () => loads.set(target, await this.prepare(scenario, target, plans, result, `${prefix} ${target.name}`)))
    }
    const rounds = new Map<Server, TargetMeasurement[]>([...loads.keys()].map((target) => [target, []]))
    const count = roundsOf(options)
    // The service's CPU profile window: from its first round to its last (it idles between them).
    const window = { name: scenario.name, fromUs: Number.NaN, toUs: Number.NaN }
    for (let round = 0; round < count; round++) {
      for (const target of round % 2 === 0 ? order : [...order].reverse()) {
        const load = loads.get(target)
        if (!load) continue
        signal.throwIfAborted()
        if (target === service && Number.isNaN(window.fromUs)) window.fromUs = nowUs()
        const label = `${prefix} ${target.name} ${round + 1}/${count}`
        const ok = await this.guarded(scenario, target, result, async () => rounds.get(target)!.push(await this.measured(scenario, target, plans, result, load, label)))
        if (!ok) loads.delete(target)
        if (target === service) window.toUs = nowUs()
      }
    }
    if (!Number.isNaN(window.fromUs)) this.profileWindows.push(window)
    for (const [target, measurements] of rounds) if (measurements.length === count) result[this.slotOf.get(target)!] = combined(measurements)
    const s = result.service
    if (s && result.leastWork) {
      result.leastWorkRatio = s.rps / result.leastWork.rps
      result.leastWorkCpuRatio = (s.rps / s.serverCpu) / (result.leastWork.rps / result.leastWork.serverCpu)
    }
    if (s && result.ceiling) {
      result.ratio = s.rps / result.ceiling.rps
      result.cpuRatio = (s.rps / s.serverCpu) / (result.ceiling.rps / result.ceiling.serverCpu)
    }
  }

  /** Runs `step` of one target; a failure is recorded (false), a target that died ends the run. */
  private async guarded(scenario: Scenario, target: Server, result: ScenarioResult, step: () => Promise<unknown>): Promise<boolean> {
    try {
      await step()
      return true
    } catch (error) {
      if (this.run.signal.aborted) throw error
      const message = `${target.name}: ${(error as Error).message}`
      result.failures.push(message)
      console.log(`\n  ✗ FAILED ${scenario.name} ${message}`)
      if (target.child.exitCode !== null) {
        console.log(`  ${target.name} exited (${target.child.exitCode}); stderr:\n${target.stderrTail()}`)
        throw new Error(`${target.name} died during ${scenario.name}`)
      }
      return false
    }
  }

  /** Preflight and warm-up of one target; answers how to load it. */
  private async prepare(scenario: Scenario, target: Server, plans: PlannedRequest[][], result: ScenarioResult, label: string): Promise<Load> {
    const { options, context, signal, generatorCore } = this.run
    const etags = this.etagsOf.get(target)!
    await refreshEtags(target.url, plans, etags)
    const problem = await preflight(target.url, scenario, plans, etags)
    if (problem) throw new Error(`preflight: ${problem}`)
    const load: Load = (durationSec) => scenario.measure
      ? scenario.measure({ ...context, url: target.url, target: target.name as MeasureContext['target'], durationSec, signal })
      : runGenerator(options.generator, {
        url: target.url, plans, connections: options.connections, durationSec, expect: scenario.expect,
        etags, signal, core: generatorCore,
      })
    if (options.warmupSec > 0) {
      process.stdout.write(`${label}: warm-up ${options.warmupSec} s … `)
      const warm = await load(options.warmupSec)
      if (warm.errors > 0 || warm.unexpected > 0) {
        result.failures.push(`${target.name} warm-up: ${warm.errors} errors, ${warm.unexpected} unexpected statuses ${JSON.stringify(warm.statuses)}`)
      }
      console.log(`${Math.round(warm.rps).toLocaleString('en-US')} req/s`)
    }
    return load
  }

  /** One round of one target (quiet wait first if asked), measured again on a noisy host when time permits. */
  private async measured(scenario: Scenario, target: Server, plans: PlannedRequest[][], result: ScenarioResult, load: Load, label: string): Promise<TargetMeasurement> {
    const { options, signal } = this.run
    const etags = this.etagsOf.get(target)!
    if (options.quietWaitSec > 0) {
      const waited = await waitForQuiet(options.quietWaitSec, signal)
      if (waited > 1.5) process.stdout.write(`${label}: waited ${waited.toFixed(0)} s for the host to quieten\n`)
    }
    await refreshEtags(target.url, plans, etags)
    process.stdout.write(`${label}: `)
    let best = await this.measureOnce(scenario, target, result, load, roundSec(options))
    // A shared host: when other processes took a good part of a core, measure the round again
    // (time permitting) and keep the quietest measurement.
    for (let retry = 1; retry <= options.retries && best.otherCpu > REMEASURE_ABOVE; retry++) {
      if (seconds(this.run.runStart) + roundSec(options) + 1 > options.budgetSec) break
      signal.throwIfAborted()
      await refreshEtags(target.url, plans, etags)
      process.stdout.write(`${label}: noisy, again: `)
      const again = await this.measureOnce(scenario, target, result, load, roundSec(options))
      if (again.otherCpu < best.otherCpu) best = again
    }
    return best
  }

  /** One measured run, with the CPU every party used meanwhile; failures go into `result`. */
  private async measureOnce(scenario: Scenario, target: Server, result: ScenarioResult, load: Load, durationSec: number): Promise<TargetMeasurement> {
    const { options } = this.run
    process.stdout.write(`measuring ${durationSec} s … `)
    const cpuBefore = cpuSeconds(target.pid)
    const selfBefore = process.cpuUsage()
    const busyBefore = machineBusySeconds()
    const t0 = performance.now()
    const measured = await load(durationSec)
    const wallSec = seconds(t0)
    const serverCpuSec = cpuSeconds(target.pid) - cpuBefore
    const self = process.cpuUsage(selfBefore)
    // Everything else the machine did meanwhile; autocannon runs in this process, wrk does not.
    const ours = serverCpuSec + measured.generatorCpuSec + (options.generator === 'wrk' || scenario.measure ? (self.user + self.system) / 1e6 : 0)
    const otherCpuSec = Math.max(0, machineBusySeconds() - busyBefore - ours)
    const m: TargetMeasurement = {
      ...measured, wallSec,
      serverCpu: serverCpuSec / wallSec,
      generatorCpu: measured.generatorCpuSec / wallSec,
      otherCpu: otherCpuSec / wallSec,
    }
    const gen = m.generatorCpu >= GENERATOR_BOUND ? ' (generator-bound)' : ''
    const noisy = m.otherCpu > NOISY ? ` — other processes used ${Math.round(m.otherCpu * 100)}% of a core meanwhile (noisy)` : ''
    console.log(`${Math.round(m.rps).toLocaleString('en-US')} req/s, p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms, ` +
      `server CPU ${Math.round(m.serverCpu * 100)}%, generator CPU ${Math.round(m.generatorCpu * 100)}%${gen}${noisy}`)
    if (m.errors > 0 || m.unexpected > 0 || m.non2xx > 0 || m.requests === 0) {
      const problem = `${target.name}: ${m.errors} errors, ${m.non2xx} non-2xx, ${m.unexpected} unexpected statuses ${JSON.stringify(m.statuses)}${m.requests === 0 ? ', no responses' : ''}`
      result.failures.push(problem)
      console.log(`  ✗ FAILED ${scenario.name} ${problem}`)
    }
    return m
  }
}

/**
 * Current ETags of every conditional path in the plans, fetched with GET (also after an interrupted
 * run). A run that just stopped may leave writes the generator gave up on still being applied, so
 * the ETags are read until two reads agree: a stale one would turn every later write of its
 * connection into a 412.
 */
async function refreshEtags(url: string, plans: PlannedRequest[][], etags: Map<string, string>): Promise<void> {
  const conditional = new Map<string, string>()
  for (const plan of plans) for (const r of plan) if (r.conditional) conditional.set(r.path, r.headers['X-API-Key'] ?? '')
  if (conditional.size === 0) return
  const read = async () => new Map(await Promise.all([...conditional].map(async ([path, key]) => {
    const response = await fetch(`${url}${path}`, { headers: { 'X-API-Key': key } })
    await response.arrayBuffer()
    const etag = response.headers.get('etag')
    if (response.status !== 200 || !etag) throw new Error(`GET ${path} for its ETag answered ${response.status}`)
    return [path, etag] as const
  })))
  let current = await read()
  for (let attempt = 0; attempt < 20; attempt++) {
    await Bun.sleep(25)
    const again = await read()
    const settled = [...again].every(([path, etag]) => current.get(path) === etag)
    current = again
    if (settled) break
  }
  for (const [path, etag] of current) etags.set(path, etag)
}

/**
 * Waits (at most `maxSec`) for a one-second window in which processes other than ours used less
 * than NOISY of a core; returns the seconds waited. Our servers are idle between runs.
 */
async function waitForQuiet(maxSec: number, signal: AbortSignal): Promise<number> {
  const start = performance.now()
  while (seconds(start) < maxSec && !signal.aborted) {
    const busy = machineBusySeconds()
    const self = process.cpuUsage()
    await Bun.sleep(1000)
    const mine = process.cpuUsage(self)
    const other = machineBusySeconds() - busy - (mine.user + mine.system) / 1e6
    if (!(other >= NOISY)) break
  }
  return seconds(start)
}

/** One request of the scenario through fetch, to fail early with a readable message. */
async function preflight(url: string, scenario: Scenario, plans: PlannedRequest[][], etags: Map<string, string>): Promise<string | null> {
  const seen = new Set<string>()
  for (const request of plans[0] ?? []) {
    const kind = `${request.method} ${request.conditional ? 'conditional' : ''}`
    if (seen.has(kind)) continue
    seen.add(kind)
    const headers: Record<string, string> = { ...request.headers }
    let body = request.body
    if (request.conditional) {
      headers['If-Match'] = etags.get(request.path) ?? '*'
      body = request.conditional.bodies[0]
    }
    const response = await fetch(`${url}${request.path}`, { method: request.method, headers, body })
    const text = await response.text()
    if (!scenario.expect.includes(response.status)) {
      return `${request.method} ${request.path} answered ${response.status} (expected ${scenario.expect.join('/')}): ${text.slice(0, 300)}`
    }
    const etag = response.headers.get('etag')
    if (request.conditional && etag) etags.set(request.path, etag)
  }
  return null
}
