// Histograms kept as plain numbers on the hot path and rendered by prom-client's registry at
// scrape time: a request looks its series up once by a string key and adds to a few numbers,
// instead of prom-client hashing a label object per observation.
import type { Metric, Registry } from 'prom-client'

interface Sample {
  value: number
  labels: Record<string, string | number>
  metricName?: string
}

/** The shape prom-client's Registry reads from a metric (what its Counter and Histogram implement). */
export function readThrough(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Sample[]): Metric {
  const metric = { name, help, type, aggregator: 'sum', get: async () => ({ name, help, type, aggregator: 'sum', values: values() }), reset: () => undefined }
  return metric as unknown as Metric
}

/** One series: its labels and running figures. */
export interface Series {
  readonly labels: Readonly<Record<string, string>>
  count: number
  sum: number
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array
}

export interface TallyOptions {
  name: string
  help: string
  buckets: readonly number[]
  /** Also exported: a counter of each series' observations (`count`) or of their sum (`sum`). */
  total?: { name: string; help: string; of: 'count' | 'sum' }
}

export class Tallies {
  private readonly series = new Map<string, Series>()

  constructor(registry: Registry, private readonly options: TallyOptions) {
    const { name, help, total } = options
    registry.registerMetric(readThrough(name, help, 'histogram', () => this.histogramSamples()))
    if (total) registry.registerMetric(readThrough(total.name, total.help, 'counter', () => [...this.series.values()].map((s) => ({ value: s[total.of], labels: s.labels }))))
  }

  /** The series under `key`, created with `labels()` the first time: callers keep or re-find it cheaply. */
  of(key: string, labels: () => Record<string, string>): Series {
    let series = this.series.get(key)
    if (!series) {
      series = { labels: labels(), count: 0, sum: 0, buckets: new Float64Array(this.options.buckets.length + 1) }
      this.series.set(key, series)
    }
    return series
  }

  observe(series: Series, value: number): void {
    series.count++
    series.sum += value
    const bounds = this.options.buckets
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    series.buckets[i]!++
  }

  private histogramSamples(): Sample[] {
    const { name, buckets: bounds } = this.options
    const samples: Sample[] = []
    for (const { labels, count, sum, buckets } of this.series.values()) {
      let cumulative = 0
      bounds.forEach((le, i) => {
        cumulative += buckets[i]!
        samples.push({ value: cumulative, labels: { le, ...labels }, metricName: `${name}_bucket` })
      })
      samples.push({ value: count, labels: { le: "+Inf", ...labels }, metricName: `${name}_bucket` })
      samples.push({ value: sum, labels, metricName: `${name}_sum` })
      samples.push({ value: count, labels, metricName: `${name}_count` })
    }
    return samples
  }
}
