// Simulated sensors (SIMULATOR=on): a few topics with plausible readings every 2 s,
// published through the hub like any other reading.
import type { SensorHub } from './hub'
import { topicOf } from './model'

export interface SimulatedSensor {
  id: string
  read(tick: number): Record<string, unknown>
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
/** A slow wave plus a little noise, kept within [min, max]. */
const wave = (tick: number, min: number, max: number, period: number, phase = 0) => {
  const mid = (min + max) / 2
  const amplitude = (max - min) / 2
  const value = mid + amplitude * 0.8 * Math.sin((2 * Math.PI * tick) / period + phase) + amplitude * 0.2 * (Math.random() * 2 - 1)
  return Math.min(max, Math.max(min, value))
}

export const defaultSensors: SimulatedSensor[] = [
  // As in the seed: a temperature of 20–30 °C.
  { id: 'temperature-1', read: (tick) => ({ temperature: round(wave(tick, 20, 30, 90)), unit: 'C' }) },
  { id: 'humidity-1', read: (tick) => ({ humidity: round(wave(tick, 35, 65, 150, 1)), unit: '%' }) },
  { id: 'pressure-1', read: (tick) => ({ pressure: round(wave(tick, 995, 1025, 300, 2)), unit: 'hPa' }) },
  { id: 'co2-1', read: (tick) => ({ co2: Math.round(wave(tick, 400, 1200, 60, 3)), unit: 'ppm' }) },
]

export interface Simulator {
  stop(): void
}

/** Publishes one reading per sensor now and then every `intervalMs`, until stopped. */
export function startSimulator(hub: SensorHub, { intervalMs = 2000, sensors = defaultSensors }: { intervalMs?: number; sensors?: SimulatedSensor[] } = {}): Simulator {
  let tick = 0
  const publish = () => {
    // A reading lost while the shared feed is away is simply not simulated.
    for (const sensor of sensors) void Promise.resolve(hub.publish(topicOf(sensor.id), sensor.read(tick))).catch(() => {})
    tick++
  }
  publish()
  const timer = setInterval(publish, intervalMs)
  // The simulator alone must not keep a process (or a test run) alive.
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
