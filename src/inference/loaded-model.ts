// One version of a model as it is served: its net compiled into the kernel and what describes it,
// built from a file parseModel accepted. Immutable: a reload builds a new one.
import type { CompiledNet, Kernel } from './kernel'
import type { InferenceModel, Kind } from './model'
import { type Label, type ModelFile, modelLayers } from './model-file'

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
}

/** Compiles a validated file into `kernel`; the caller releases `net` when this version is replaced. */
export function compileModel(kernel: Kernel, file: ModelFile, digest: string): LoadedModel {
  const net = kernel.compile(modelLayers(file))
  const classes = file.kind === 'linear' ? undefined : file.classes
  const summary: InferenceModel.Summary = { name: file.name, version: file.version, kind: file.kind, features: [...file.features] }
  if (file.description !== undefined) summary.description = file.description
  if (classes) summary.classes = [...classes]
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
  }
}
