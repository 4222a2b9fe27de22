// Request rows into the kernel's input: each row is checked in the same pass that writes it
// (no intermediate arrays), and a bad value becomes a RowProblem naming where it is, which
// `run` turns into a 422. The outputs are checked finite before anyone reads them.
import { HttpError, invalid } from '../platform/errors'
import { type Fill, KernelMemoryError } from './kernel'
import type { LoadedModel } from './loaded-model'
import { MAX_OUTPUT_VALUES } from './model'

/** A bad value inside row `row` of a batch; `at` is its path within the row (`[2]`, `.bmi`, or empty). */
export class RowProblem {
  row = 0
  constructor(readonly at: string, readonly message: string) {}
}

const featureList = (model: LoadedModel) => {
  const shown = model.features.slice(0, 12).join(', ')
  return model.features.length > 12 ? `${shown}, … (${model.features.length} features)` : shown
}

/**
 * Says what is wrong with a value that is not a finite number (JSON cannot say NaN, but 1e400 parses
 * as Infinity), unless it is null for a model that routes missing values: then it is NaN, which the
 * kernel's trees send where the model learned missing values go.
 */
function check(value: unknown, at: string, missing: boolean): number {
  if (value === null) {
    if (missing) return Number.NaN
    throw new RowProblem(at, 'is null (a missing value), which this model cannot take: only tree models that learned where missing values go (XGBoost, HistGradientBoosting) accept null')
  }
  if (typeof value !== 'number') throw new RowProblem(at, 'must be a number')
  throw new RowProblem(at, 'must be a finite number')
}

// In the writers below, `x - x === 0` holds for every finite number and fails for ±Infinity and NaN;
// check() runs (and builds its path) only for a bad value.

function writePositional(row: readonly unknown[], input: Float64Array, offset: number, model: LoadedModel): void {
  const n = model.features.length
  if (row.length !== n) throw new RowProblem('', `has ${row.length} values, expected ${n} (${featureList(model)})`)
  for (let i = 0; i < n; i++) {
    const value = row[i]
    input[offset + i] = typeof value === 'number' && value - value === 0 ? value : check(value, `[${i}]`, model.missing)
  }
}

export function writeNamed(row: Record<string, unknown>, input: Float64Array, offset: number, model: LoadedModel): void {
  const columns = model.columns
  let seen = 0
  for (const key in row) {
    const column = columns.get(key)
    if (column === undefined) throw new RowProblem(`.${key}`, `is not a feature of ${model.name} (${featureList(model)})`)
    const value = row[key]
    input[offset + column] = typeof value === 'number' && value - value === 0 ? value : check(value, `.${key}`, model.missing)
    seen++
  }
  // Keys are unique and all known, so fewer than n means one is missing.
  if (seen !== model.features.length) {
    const missing = model.features.find((feature) => !Object.hasOwn(row, feature))!
    throw new RowProblem(`.${missing}`, 'is missing')
  }
}

/** A Fill over rows that are each positional (an array) or named (an object), as `instances` and nested v2 data hold them. */
export function fillRows(rows: readonly unknown[], model: LoadedModel, arraysOnly = false): Fill {
  const n = model.features.length
  return (input, first, count) => {
    let r = 0
    try {
      for (; r < count; r++) {
        const row = rows[first + r]
        if (Array.isArray(row)) writePositional(row, input, r * n, model)
        else if (typeof row === 'object' && row !== null && !arraysOnly) writeNamed(row as Record<string, unknown>, input, r * n, model)
        else throw new RowProblem('', `must be an array of ${n} numbers${arraysOnly ? '' : ' or an object of feature values'}`)
      }
    } catch (error) {
      if (error instanceof RowProblem) error.row = first + r
      throw error
    }
  }
}

/** A Fill over one flat, row-major array of `n` values per row, as flat v2 tensor data holds them. */
export function fillFlat(data: readonly unknown[], n: number, missing: boolean): Fill {
  return (input, first, count) => {
    const start = first * n
    const end = start + count * n
    for (let i = start; i < end; i++) {
      const value = data[i]
      input[i - start] = typeof value === 'number' && value - value === 0 ? value : check(value, `[${i}]`, missing)
    }
  }
}

/**
 * Runs `fill`'s rows through the model's net; a RowProblem becomes a 422 naming `field(problem)`.
 * A batch whose answer would pass MAX_OUTPUT_VALUES, or whose scratch the kernel cannot grow to, is a 413.
 */
export function run(model: LoadedModel, rows: number, field: (problem: RowProblem) => string, fill: Fill): Float64Array {
  const values = rows * (model.classes?.length ?? 1)
  if (values > MAX_OUTPUT_VALUES) {
    throw new HttpError(413, `${rows} rows of ${model.name} would answer ${values} values; at most ${MAX_OUTPUT_VALUES} per request: send fewer rows`)
  }
  let outputs: Float64Array
  try {
    outputs = model.net.run(rows, fill)
  } catch (error) {
    if (error instanceof KernelMemoryError) throw new HttpError(413, `a batch of ${rows} rows of ${model.name} ${error.message}: send fewer rows`)
    if (!(error instanceof RowProblem)) throw error
    throw invalid(field(error), error.message)
  }
  const width = outputs.length / rows
  for (let i = 0; i < outputs.length; i++) {
    const value = outputs[i]!
    if (value - value !== 0) {
      throw invalid('body', `the prediction for row ${Math.floor(i / width)} is not a finite number: its inputs are out of the range this model can compute`)
    }
  }
  return outputs
}
