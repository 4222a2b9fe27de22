// The process metrics prom-client's collectDefaultMetrics registers, registered one by one so that
// its CPU counters (which load @opentelemetry/api for exemplars the service never records, about
// 3 MB resident) are left out; the same three counters are read from process.cpuUsage() instead.
import type { Registry } from 'prom-client'
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag'
import gc from 'prom-client/lib/metrics/gc'
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed'
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed'
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap'
import processHandles from 'prom-client/lib/metrics/processHandles'
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors'
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors'
import processRequests from 'prom-client/lib/metrics/processRequests'
import processResources from 'prom-client/lib/metrics/processResources'
import processStartTime from 'prom-client/lib/metrics/processStartTime'
import version from 'prom-client/lib/metrics/version'

/** Registers on `registry` what collectDefaultMetrics would; `total` registers a counter read at scrape time. */
export function processMetrics(registry: Registry, total: (name: string, help: string, read: () => number) => void): void {
  const config = { eventLoopMonitoringPrecision: 10 }
  const parts = [processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, eventLoopLag, processHandles,
    processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version, gc]
  if (typeof process.getActiveResourcesInfo === 'function') parts.push(processResources)
  for (const part of parts) part(registry, config)
  const cpu = () => process.cpuUsage()
  total('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => cpu().user / 1e6)
  total('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => cpu().system / 1e6)
  total('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const { user, system } = cpu()
    return (user + system) / 1e6
  })
}
