// One version of a model as it is served: its net compiled into the kernel and what describes it,
// built from a file parseModel accepted. Immutable: a reload builds a new one.
import { digestOf, XGB_SUFFIX } from './folder'
import { fromXgboost, isXgboost } from './formats/xgboost'
import type { CompiledNet, Kernel } from './kernel'
import type { InferenceModel, Kind } from './model'
import { type Label, type ModelFile, ModelFileError, modelLayers, parseModel } from './model-file'
import { takesMissing, treeCounts } from './model-trees'

/** Where a model's file came from: this service's own format, or a library's as saved (NAME.xgb.json). */
export type Source = 'taskmesh' | 'xgboost_json'

export interface LoadedModel {
  readonly name: string
  readonly version: string
  readonly kind: Kind
  readonly net: CompiledNet
  readonly features: readonly string[]
  /** Feature name → column, for rows given by name. */
  readonly columns: ReadonlyMap<string, number>
  /** Labels for classifiers, undefined for regressors. */
  readonly classes: readonly Label[] | undefined
  /** The labels as the keys of a prediction's `probabilities`. */
  readonly labelKeys: readonly string[]
  readonly summary: InferenceModel.Summary
  /** Hash of the file's text, to skip reloading an unchanged file. */
  readonly digest: string
  /** True when `null` in a row is a missing value the model routes (trees that learned where missing values go). */
  readonly missing: boolean
  /** The file in MODELS_DIR it was read from (NAME.json or NAME.xgb.json). */
  readonly file: string
  readonly source: Source
}

/** Compiles a validated file into `kernel`; the caller releases `net` when this version is replaced. */
export function compileModel(kernel: Kernel, file: ModelFile, digest: string, source: Source = 'taskmesh', fileName = `${file.name}.json`): LoadedModel {
  const net = file.kind === 'trees' ? kernel.compileTrees(file, file.features.length) : kernel.compile(modelLayers(file))
  const classes = file.kind === 'linear' ? undefined : file.classes
  const summary: InferenceModel.Summary = { name: file.name, version: file.version, kind: file.kind, features: [...file.features] }
  if (file.description !== undefined) summary.description = file.description
  if (classes) summary.classes = [...classes]
  if (file.kind === 'trees') Object.assign(summary, treeCounts(file), { outputs: file.outputs, source, missing: takesMissing(file) })
  return {
    name: file.name,
    version: file.version,
    kind: file.kind,
    net,
    features: file.features,
    columns: new Map(file.features.map((feature, i) => [feature, i])),
    classes,
    labelKeys: classes ? classes.map(String) : [],
    summary,
    digest,
    missing: file.kind === 'trees' && takesMissing(file),
    file: fileName,
    source,
  }
}

/**
 * Validates and compiles the parsed text of `file` (digest `digest`) as model `name`: this service's
 * format, or an XGBoost booster (by content; a NAME.xgb.json file must be one), whose version is its digest.
 */
export function loadModel(kernel: Kernel, raw: unknown, name: string, digest: string, file: string): LoadedModel {
  const booster = isXgboost(raw)
  if (!booster && file.endsWith(XGB_SUFFIX)) throw new ModelFileError('learner', `is missing: a ${XGB_SUFFIX} file must be an XGBoost booster saved with save_model`)
  const spec = parseModel(booster ? fromXgboost(raw, name, digest) : raw, name)
  return compileModel(kernel, spec, digest, booster ? 'xgboost_json' : 'taskmesh', file)
}

/** An upload as it will be written: a booster as sent (to NAME.xgb.json), a model file of ours as checked (to NAME.json). */
export function prepareUpload(raw: unknown, name: string): { spec: ModelFile; text: string; file: string; source: Source } {
  if (!isXgboost(raw)) {
    const spec = parseModel(raw, name)
    return { spec, text: `${JSON.stringify(spec, null, 1)}\n`, file: `${name}.json`, source: 'taskmesh' }
  }
  const text = `${JSON.stringify(raw)}\n`
  return { spec: parseModel(fromXgboost(raw, name, digestOf(text)), name), text, file: `${name}${XGB_SUFFIX}`, source: 'xgboost_json' }
}
