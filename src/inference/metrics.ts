// What inference reports to Prometheus: models loaded and files rejected, `predictions_total{model}`
// (rows predicted) and the histogram `prediction_batch_rows{model}` (rows per request). The last two
// sit on the hot path of every prediction, so they are plain per-model tallies (a Map lookup and a
// few additions) that prom-client's registry renders at scrape time, instead of prom-client objects
// hashing labels per request.
import type { Metric, Registry } from 'prom-client'
import type { Telemetry } from '../platform/observability'
import type { ModelRegistry } from './registry'

const BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]

interface Tally {
  rows: number
  requests: number
  /** Requests per bucket, not cumulative; the last slot is +Inf. */
  buckets: number[]
}

interface Sample {
  value: number
  labels: Record<string, string | number>
  metricName?: string
}

/** The shape prom-client's Registry reads from a metric (what Counter and Histogram implement). */
function readThrough(name: string, help: string, type: 'counter' | 'histogram', values: () => Sample[]): Metric {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset: () => undefined,
  }
  return metric as unknown as Metric
}

export class PredictionMetrics {
  private readonly tallies = new Map<string, Tally>()

  constructor(registry: Registry) {
    registry.registerMetric(readThrough('predictions_total', 'Rows predicted, by model', 'counter',
      () => [...this.tallies].map(([model, tally]) => ({ value: tally.rows, labels: { model } }))))
    registry.registerMetric(readThrough('prediction_batch_rows', 'Rows per prediction request, by model', 'histogram', () => {
      const samples: Sample[] = []
      for (const [model, tally] of this.tallies) {
        let cumulative = 0
        BUCKETS.forEach((le, i) => {
          cumulative += tally.buckets[i]!
          samples.push({ value: cumulative, labels: { le, model }, metricName: 'prediction_batch_rows_bucket' })
        })
        samples.push({ value: tally.requests, labels: { le: '+Inf', model }, metricName: 'prediction_batch_rows_bucket' })
        samples.push({ value: tally.rows, labels: { model }, metricName: 'prediction_batch_rows_sum' })
        samples.push({ value: tally.requests, labels: { model }, metricName: 'prediction_batch_rows_count' })
      }
      return samples
    }))
  }

  observe(model: string, rows: number): void {
    let tally = this.tallies.get(model)
    if (!tally) {
      tally = { rows: 0, requests: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) }
      this.tallies.set(model, tally)
    }
    tally.rows += rows
    tally.requests++
    let i = 0
    while (i < BUCKETS.length && rows > BUCKETS[i]!) i++
    tally.buckets[i]!++
  }
}

/** What the service reports to Prometheus. */
export class InferenceMetrics {
  private readonly predictions: PredictionMetrics

  constructor(telemetry: Telemetry, registry: ModelRegistry) {
    this.predictions = new PredictionMetrics(telemetry.registry)
    telemetry.gauge('models_loaded', 'Models being served', () => registry.size)
    telemetry.gauge('model_files_rejected', 'Files in MODELS_DIR that failed validation', () => registry.rejections().length)
  }

  observe(model: string, rows: number): void {
    this.predictions.observe(model, rows)
  }
}
