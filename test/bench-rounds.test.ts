// bun run bench measures each target in rounds the three take turns in: how the rounds add up.
import { describe, expect, test } from 'bun:test'
import { combined, roundsOf } from '../bench/measure.ts'
import type { TargetMeasurement } from '../bench/report.ts'

const round = (requests: number, wallSec: number, extra: Partial<TargetMeasurement> = {}): TargetMeasurement => ({
  requests, durationSec: wallSec, wallSec, rps: requests / wallSec, p50: 1, p99: 2, errors: 0, non2xx: 0, unexpected: 0,
  statuses: { 200: requests }, bytesPerResponse: 500, generatorCpuSec: wallSec / 2, serverCpu: 1, generatorCpu: 0.5, otherCpu: 0,
  ...extra,
})

describe('bench rounds', () => {
  test('a measurement is split into --rounds turns of at least a second each', () => {
    expect(roundsOf({ rounds: 4, durationSec: 8 })).toBe(4)
    expect(roundsOf({ rounds: 4, durationSec: 3 })).toBe(3)
    expect(roundsOf({ rounds: 4, durationSec: 0.5 })).toBe(1)
    expect(roundsOf({ rounds: 1, durationSec: 8 })).toBe(1)
  })

  test('rounds add up: requests over time, CPU weighted by time, median p50, worst p99, statuses summed', () => {
    const total = combined([
      round(30_000, 1, { p50: 2, p99: 9, serverCpu: 0.9, otherCpu: 0.3, bytesPerResponse: 400, statuses: { 200: 29_990, 412: 10 }, unexpected: 10 }),
      round(20_000, 1, { p50: 3, p99: 5, serverCpu: 1, bytesPerResponse: 600 }),
      round(50_000, 2, { p50: 1, p99: 4, serverCpu: 0.8 }),
    ])
    expect(total.requests).toBe(100_000)
    expect(total.wallSec).toBe(4)
    expect(total.rps).toBe(25_000)
    expect(total.p50).toBe(2)
    expect(total.p99).toBe(9)
    expect(total.serverCpu).toBeCloseTo((0.9 + 1 + 0.8 * 2) / 4, 10)
    expect(total.otherCpu).toBeCloseTo(0.3 / 4, 10)
    expect(total.bytesPerResponse).toBeCloseTo((400 * 30_000 + 600 * 20_000 + 500 * 50_000) / 100_000, 10)
    expect(total.statuses).toEqual({ 200: 99_990, 412: 10 })
    expect(total.unexpected).toBe(10)
    expect(total.generatorCpuSec).toBe(2)
  })

  test('one round is itself', () => {
    const only = round(12_345, 2, { p50: 1.5, p99: 7 })
    expect(combined([only])).toEqual(only)
  })
})

describe('bench measurement length', () => {
  test('a default run shortens each measurement to fit its budget; --check never does', async () => {
    const { parseOptions } = await import('../bench/options.ts')
    const all = parseOptions([])!
    expect(all.scenarios.length).toBeGreaterThan(3)
    expect(all.durationSec + all.warmupSec).toBeLessThan(10)
    const checked = parseOptions(['--check'])!
    expect([checked.durationSec, checked.warmupSec]).toEqual([8, 2])
    expect(parseOptions(['--check', '--duration', '3'])!.durationSec).toBe(3)
  })
})
