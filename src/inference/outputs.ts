// A net's outputs as answers: v1 predictions (a value, or a label with its probabilities) and
// v2 tensors (predict, predict_proba), with the output names the Open Inference Protocol uses.
import { invalid } from '../platform/errors'
import type { LoadedModel } from './loaded-model'
import type { InferenceModel, KServeModel } from './model'
import type { Label } from './model-file'

export const INPUT_NAME = 'input-0'
/** Output names as the scikit-learn runtimes of the Open Inference Protocol (MLServer) call them. */
export const PREDICT = 'predict'
export const PREDICT_PROBA = 'predict_proba'

/** Probabilities (rows × classes, row-major) and the argmax label of each row; one sigmoid output p is [1 - p, p]. */
function classify(classes: readonly Label[], outputs: Float64Array, rows: number): { probabilities: number[]; labels: Label[] } {
  const c = classes.length
  const width = outputs.length / rows
  const probabilities = new Array<number>(rows * c)
  const labels = new Array<Label>(rows)
  for (let r = 0; r < rows; r++) {
    if (width === 1) {
      probabilities[r * 2] = 1 - outputs[r]!
      probabilities[r * 2 + 1] = outputs[r]!
    } else {
      for (let j = 0; j < c; j++) probabilities[r * c + j] = outputs[r * c + j]!
    }
    let best = 0
    for (let j = 1; j < c; j++) if (probabilities[r * c + j]! > probabilities[r * c + best]!) best = j
    labels[r] = classes[best]!
  }
  return { probabilities, labels }
}

/** One v1 prediction per row: the value for a regressor, the argmax label and every class's probability for a classifier. */
export function predictionsOf(model: LoadedModel, outputs: Float64Array, rows: number): InferenceModel.Prediction['predictions'] {
  const classes = model.classes
  if (!classes) {
    // A loop, not Array.from: that walks a typed array through its iterator, a sixth of a batch's own work.
    const values = new Array<number>(outputs.length)
    for (let i = 0; i < outputs.length; i++) values[i] = outputs[i]!
    return values
  }
  const { probabilities, labels } = classify(classes, outputs, rows)
  const keys = model.labelKeys
  return labels.map((label, r) => {
    // No prototype: a label such as `__proto__` is then an own key like any other, not a setter.
    const byLabel = Object.create(null) as Record<string, number>
    for (let j = 0; j < keys.length; j++) byLabel[keys[j]!] = probabilities[r * keys.length + j]!
    return { label, probabilities: byLabel }
  })
}

/** The v2 datatype of a classifier's labels. */
export function labelType(classes: readonly Label[]): string {
  if (classes.some((label) => typeof label === 'string')) return 'BYTES'
  return classes.every((label) => Number.isInteger(label)) ? 'INT64' : 'FP64'
}

/** The v2 outputs a request asked for (all when it names none); an unknown name is a 422. */
export function requestedOutputs(model: LoadedModel, outputs: KServeModel.InferBody['outputs']): Set<string> {
  const known = model.classes ? [PREDICT, PREDICT_PROBA] : [PREDICT]
  if (outputs === undefined) return new Set(known)
  outputs.forEach((output, i) => {
    if (!known.includes(output.name)) throw invalid(`body.outputs[${i}].name`, `must be one of ${known.join(', ')}`)
  })
  return new Set(outputs.map((output) => output.name))
}

/** The v2 output tensors of a batch: predict [rows, 1] and, for classifiers, predict_proba [rows, classes]. */
export function tensorsOf(model: LoadedModel, outputs: Float64Array, rows: number, wanted: Set<string>): KServeModel.Output[] {
  const classes = model.classes
  if (!classes) return [{ name: PREDICT, datatype: 'FP64', shape: [rows, 1], data: Array.from(outputs) }]
  const { probabilities, labels } = classify(classes, outputs, rows)
  const tensors: KServeModel.Output[] = []
  if (wanted.has(PREDICT)) tensors.push({ name: PREDICT, datatype: labelType(classes), shape: [rows, 1], data: labels })
  if (wanted.has(PREDICT_PROBA)) tensors.push({ name: PREDICT_PROBA, datatype: 'FP64', shape: [rows, classes.length], data: probabilities })
  return tensors
}
