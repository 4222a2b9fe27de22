// What inference reports to Prometheus: models loaded and files rejected, `predictions_total{model}`
// (rows predicted) and the histogram `prediction_batch_rows{model}` (rows per request), kept as
// plain per-model tallies on the hot path of every prediction.
import type { Telemetry } from '../platform/observability'
import { Tallies } from '../platform/tallies'
import type { ModelRegistry } from './registry'

export class InferenceMetrics {
  private readonly batches: Tallies

  constructor(telemetry: Telemetry, registry: ModelRegistry) {
    this.batches = new Tallies(telemetry.registry, {
      name: 'prediction_batch_rows',
      help: 'Rows per prediction request, by model',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000],
      total: { name: 'predictions_total', help: 'Rows predicted, by model', of: 'sum' },
    })
    telemetry.gauge('models_loaded', 'Models being served', () => registry.size)
    telemetry.gauge('model_files_rejected', 'Files in MODELS_DIR that failed validation', () => registry.rejections().length)
  }

  observe(model: string, rows: number): void {
    this.batches.observe(this.batches.of(model, () => ({ model })), rows)
  }
}
