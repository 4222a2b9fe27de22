// The models being served: every `*.json` of MODELS_DIR, validated, compiled into the WASM
// kernel and swapped in atomically when its file changes (fs.watch, and a poll as a safety net)
// or is uploaded (PUT). Only the compiled net and what describes the model stay in memory.
//
// A model's name is its file name without `.json`; the `name` inside the file must equal it, so
// a URL, a file and a model are one and the same thing. Hidden files (editor swap and lock files,
// our own temp files) are ignored. A file that fails validation is logged and listed under
// `rejected`; whatever version of it was serving before keeps serving.
//
// Nets are only ever run synchronously right after `get()` (see service.ts), so a request never
// sees a net released under it: the new version is compiled before the swap and the old one is
// released right after it, in the same turn of the event loop.
import { type FSWatcher, watch } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { HttpError } from '../platform/errors'
import type { Logger } from '../platform/logger'
import { ACTIVATIONS, type CompiledNet, type DenseLayer, Kernel, type Label, modelLayers, ModelShapeError, type ModelSpec } from './kernel'
import { type InferenceModel, KINDS, type Kind, MODEL_NAME, modelNamePattern } from './model'

/** A model file after validation: the kernel's spec plus what describes it. */
export type ModelFile = ModelSpec & {
  readonly name: string
  readonly version: string
  readonly description?: string
  readonly features: readonly string[]
}

/** One version of a model, compiled and ready to run. Immutable: a reload builds a new one. */
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

export interface Rejection {
  file: string
  message: string
}

/** A model file that cannot be served; `path` locates the bad value (`layers[1].bias[3]`), empty for the whole file. */
export class ModelFileError extends Error {
  override name = 'ModelFileError'
  constructor(readonly path: string, readonly detail: string) {
    super(path ? `${path}: ${detail}` : detail)
  }
}

export interface RegistryOptions {
  dir: string
  log: Logger
  /** Quiet time after the last change to a file before it is reloaded. */
  debounceMs?: number
  /** While watching, how often the folder is also polled for what fs.watch misses (network file systems). */
  pollMs?: number
}

const digestOf = (text: string) => Bun.hash(text).toString(36)
const isModelFile = (file: string) => file.endsWith('.json') && !file.startsWith('.') && !file.startsWith('#')
const nameOf = (file: string) => file.slice(0, -'.json'.length)
const stampOf = (info: { mtimeMs: number; size: number }) => `${info.mtimeMs}:${info.size}`

export class ModelRegistry {
  /** True once the initial load finished (the readiness check `models`). */
  ready = false
  readonly dir: string
  private readonly log: Logger
  private readonly debounceMs: number
  private readonly pollMs: number
  private readonly models = new Map<string, LoadedModel>()
  private readonly rejected = new Map<string, Rejection>()
  /** Bumped by every change applied to a name; a reload that started before a newer change is dropped. */
  private readonly generations = new Map<string, number>()
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()
  /** File → modification time and size when it was last read, so a poll reads only what changed. */
  private readonly stamps = new Map<string, string>()
  private poller: ReturnType<typeof setInterval> | undefined
  private kernel: Kernel | undefined
  private kernelLoading: Promise<Kernel> | undefined
  private watcher: FSWatcher | undefined
  private writes: Promise<unknown> = Promise.resolve()
  private closed = false
  /** False for `empty()`: nothing on disk to change. */
  private readonly writable: boolean

  constructor({ dir, log, debounceMs = 50, pollMs = 5000 }: RegistryOptions) {
    this.dir = dir
    this.log = log
    this.debounceMs = debounceMs
    this.pollMs = pollMs
    this.writable = dir !== ''
  }

  /** A registry with nothing to serve, ready at once and read-only (for apps built without models). */
  static empty(log: Logger): ModelRegistry {
    const registry = new ModelRegistry({ dir: '', log })
    registry.ready = true
    return registry
  }

  /** The initial load, then watching. Never rejects: a failure is logged and readiness stays false. */
  async start(): Promise<void> {
    try {
      await this.load()
      this.watch()
    } catch (error) {
      this.log.error({ err: error, dir: this.dir }, 'models: the initial load failed')
    }
  }

  /** Loads every model file of the folder (creating the folder if missing), then marks the registry ready. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await this.kernelReady()
    await this.rescan()
    this.ready = true
    this.log.info({ dir: this.dir, models: [...this.models.keys()], rejected: this.rejected.size }, 'models loaded')
  }

  get(name: string): LoadedModel | undefined {
    return this.models.get(name)
  }

  list(): LoadedModel[] {
    return [...this.models.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  rejections(): Rejection[] {
    return [...this.rejected.values()].sort((a, b) => (a.file < b.file ? -1 : 1))
  }

  /** The reason a file of that model was refused, if it was. */
  rejection(name: string): Rejection | undefined {
    return this.rejected.get(`${name}.json`)
  }

  get size(): number {
    return this.models.size
  }

  /** Nets alive in the kernel: equals `size` unless a release was missed. */
  get compiledNets(): number {
    return this.kernel?.liveNets ?? 0
  }

  /** Reloads files as they change (fs.watch, and a poll every `pollMs`). Safe to call twice; `close()` stops it. */
  watch(): void {
    if (this.watcher || this.closed) return
    this.poller ??= setInterval(() => {
      this.poll().catch((error: unknown) => this.log.error({ err: error, dir: this.dir }, 'models: polling the folder failed'))
    }, this.pollMs).unref()
    this.watcher = watch(this.dir, { persistent: false }, (_event, file) => {
      const name = file === null ? null : String(file)
      if (name !== null && isModelFile(name)) this.schedule(name)
      // Without a name (an overflow) anything may have changed; a Kubernetes ConfigMap volume
      // swaps its `..data` link, so its files change without an event of their own.
      else if (name === null || name.startsWith('..')) this.schedule('*')
    })
    this.watcher.on('error', (error) => {
      this.log.error({ err: error, dir: this.dir }, 'models: watching the folder failed; retrying in 1 s')
      this.watcher?.close()
      this.watcher = undefined
      setTimeout(() => {
        if (this.closed) return
        try {
          this.watch()
          this.schedule('*')
        } catch (retry) {
          this.log.error({ err: retry, dir: this.dir }, 'models: cannot watch the folder; changes are no longer picked up')
        }
      }, 1000).unref()
    })
  }

  /**
   * Validates and compiles `raw` as model `name`, writes it to `<name>.json` (temp file, fsync,
   * rename) and serves it before resolving. Throws ModelFileError (nothing changes) when invalid.
   */
  put(name: string, raw: unknown): Promise<{ model: LoadedModel; created: boolean }> {
    return this.exclusive(async () => {
      if (!this.writable) throw new HttpError(503, 'this instance has no models folder to write to')
      const kernel = await this.kernelReady()
      if (!modelNamePattern.test(name)) throw new ModelFileError('name', `must match ${MODEL_NAME}`)
      const spec = parseModel(raw, name)
      const text = `${JSON.stringify(spec, null, 1)}\n`
      const model = compile(kernel, spec, digestOf(text))
      try {
        await writeAtomically(this.dir, `${name}.json`, text)
      } catch (error) {
        kernel.release(model.net)
        throw error
      }
      const created = !this.models.has(name)
      this.install(model)
      this.rejected.delete(`${name}.json`)
      this.log.info({ model: name, version: model.version, created }, 'model uploaded')
      this.changed(name)
      return { model, created }
    })
  }

  /** Removes the model and its file; false when neither existed. */
  remove(name: string): Promise<boolean> {
    return this.exclusive(async () => {
      if (!this.writable) return false
      const file = `${name}.json`
      let existed = this.models.has(name) || this.rejected.has(file)
      if (modelNamePattern.test(name)) {
        try {
          await unlink(join(this.dir, file))
          existed = true
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
        }
      }
      this.uninstall(name)
      this.rejected.delete(file)
      if (existed) {
        this.log.info({ model: name }, 'model deleted')
        this.changed(name)
      }
      return existed
    })
  }

  private readonly listeners: Array<(name: string) => void> = []

  /** Calls `listener` after every upload or delete through this registry (to tell other instances). */
  onChange(listener: (name: string) => void): void {
    this.listeners.push(listener)
  }

  private changed(name: string): void {
    for (const listener of this.listeners) listener(name)
  }

  /** Stops watching and frees every net. */
  close(): void {
    this.closed = true
    this.ready = false
    this.watcher?.close()
    this.watcher = undefined
    clearInterval(this.poller)
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
    for (const name of [...this.models.keys()]) this.uninstall(name)
  }

  [Symbol.dispose](): void {
    this.close()
  }

  private kernelReady(): Promise<Kernel> {
    this.kernelLoading ??= Kernel.load().then((kernel) => (this.kernel = kernel))
    return this.kernelLoading
  }

  /** Admin writes run one at a time, so two uploads of one model cannot interleave their file and map updates. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work, work)
    this.writes = run.catch(() => undefined)
    return run
  }

  private schedule(file: string): void {
    clearTimeout(this.timers.get(file))
    this.timers.set(file, setTimeout(() => {
      this.timers.delete(file)
      if (this.closed) return
      const done = file === '*' ? this.rescan() : this.sync(file)
      done.catch((error: unknown) => this.log.error({ err: error, file }, 'models: reload failed'))
    }, this.debounceMs))
  }

  private bump(name: string): number {
    const generation = (this.generations.get(name) ?? 0) + 1
    this.generations.set(name, generation)
    return generation
  }

  /**
   * Reloads every file whose modification time or size changed since it was read, and unloads
   * models whose file is gone: a safety net for changes fs.watch does not report, such as another
   * host writing a shared network volume. Answers the files it found changed.
   */
  async poll(): Promise<string[]> {
    const files = (await readdir(this.dir)).filter(isModelFile)
    const changed: string[] = []
    await Promise.all(files.map(async (file) => {
      const info = await stat(join(this.dir, file)).catch(() => null)
      if (info && this.stamps.get(file) !== stampOf(info)) changed.push(file)
    }))
    const present = new Set(files)
    for (const file of this.stamps.keys()) if (!present.has(file)) changed.push(file)
    for (const file of changed) this.schedule(file)
    return changed.sort()
  }

  /** Brings every file of the folder, and every model whose file is gone, up to date. */
  private async rescan(): Promise<void> {
    const files = new Set((await readdir(this.dir)).filter(isModelFile))
    for (const name of this.models.keys()) files.add(`${name}.json`)
    for (const file of this.rejected.keys()) files.add(file)
    await Promise.all([...files].map((file) => this.sync(file)))
  }

  /** Reloads one file: unloads its model when it is gone, keeps the old version when it is invalid. */
  private async sync(file: string): Promise<void> {
    const name = nameOf(file)
    const generation = this.bump(name)
    const path = join(this.dir, file)
    let text: string | null
    try {
      // Stamped before reading: a write after the stat changes the stamp again, so a poll catches it.
      this.stamps.set(file, stampOf(await stat(path)))
      text = await readFile(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return this.reject(file, generation, `cannot be read: ${(error as Error).message}`)
      this.stamps.delete(file)
      text = null
    }
    const kernel = await this.kernelReady()
    // Something newer (an upload, a later event) already decided what this name serves.
    if (this.generations.get(name) !== generation || this.closed) return
    if (text === null) {
      this.rejected.delete(file)
      if (this.models.has(name)) {
        this.uninstall(name)
        this.log.info({ model: name, file }, 'model file removed: unloaded')
      }
      return
    }
    const digest = digestOf(text)
    if (this.models.get(name)?.digest === digest) {
      this.rejected.delete(file)
      return
    }
    let model: LoadedModel
    try {
      if (!modelNamePattern.test(name)) throw new ModelFileError('', `the file name must be a model name (${MODEL_NAME}) followed by .json`)
      model = compile(kernel, parseModel(parseJson(text), name), digest)
    } catch (error) {
      if (!(error instanceof ModelFileError)) throw error
      return this.reject(file, generation, error.message)
    }
    const previous = this.models.get(name)
    this.install(model)
    this.rejected.delete(file)
    this.log.info({ model: name, version: model.version, previous: previous?.version ?? null }, previous ? 'model reloaded' : 'model loaded')
  }

  private reject(file: string, generation: number, message: string): void {
    const name = nameOf(file)
    if (this.generations.get(name) !== generation) return
    const serving = this.models.get(name)
    this.rejected.set(file, { file, message })
    this.log.warn({ file, error: message, serving: serving?.version ?? null },
      serving ? `model file rejected; version ${serving.version} keeps serving` : 'model file rejected')
  }

  private install(model: LoadedModel): void {
    this.bump(model.name)
    const previous = this.models.get(model.name)
    this.models.set(model.name, model)
    if (previous) this.kernel!.release(previous.net)
  }

  private uninstall(name: string): void {
    this.bump(name)
    const previous = this.models.get(name)
    if (!previous) return
    this.models.delete(name)
    this.kernel!.release(previous.net)
  }
}

async function writeAtomically(dir: string, file: string, text: string): Promise<void> {
  // A hidden name that does not end in .json: the watcher and the initial load ignore it.
  const temp = join(dir, `.${file}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`)
  try {
    const handle = await open(temp, 'w')
    try {
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, join(dir, file))
  } catch (error) {
    await unlink(temp).catch(() => undefined)
    throw error
  }
  // The rename itself is durable once the directory is synced.
  const folder = await open(dir, 'r')
  try {
    await folder.sync()
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await folder.close()
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new ModelFileError('', `is not valid JSON: ${(error as Error).message}`)
  }
}

function compile(kernel: Kernel, spec: ModelFile, digest: string): LoadedModel {
  let net: CompiledNet
  try {
    net = kernel.compile(modelLayers(spec))
  } catch (error) {
    // parseModel checks everything the kernel does; this only guards against the two drifting apart.
    if (error instanceof ModelShapeError) throw new ModelFileError('', error.message)
    throw error
  }
  const classes = spec.kind === 'linear' ? undefined : spec.classes
  const summary: InferenceModel.Summary = { name: spec.name, version: spec.version, kind: spec.kind, features: [...spec.features] }
  if (spec.description !== undefined) summary.description = spec.description
  if (classes) summary.classes = [...classes]
  return {
    name: spec.name,
    version: spec.version,
    kind: spec.kind,
    net,
    features: spec.features,
    columns: new Map(spec.features.map((feature, i) => [feature, i])),
    classes,
    labelKeys: classes ? classes.map(String) : [],
    summary,
    digest,
  }
}

// --- validation -------------------------------------------------------------------------------

type Json = Record<string, unknown>

const FIELDS: Record<Kind, readonly string[]> = {
  linear: ['name', 'version', 'kind', 'description', 'features', 'coef', 'intercept'],
  logistic: ['name', 'version', 'kind', 'description', 'features', 'coef', 'intercept', 'classes'],
  mlp: ['name', 'version', 'kind', 'description', 'features', 'layers', 'classes'],
}

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const at = (path: string, key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key)

function fail(path: string, message: string): never {
  throw new ModelFileError(path, message)
}

function array(value: unknown, path: string, length?: number, what = 'values'): unknown[] {
  if (!Array.isArray(value)) fail(path, length === undefined ? 'must be an array' : `must be an array of ${length} ${what}`)
  if (length !== undefined && value.length !== length) fail(path, `has ${value.length} ${what}, expected ${length}`)
  return value
}

function finite(value: unknown, path: string): number {
  if (typeof value !== 'number') fail(path, 'must be a number')
  if (!Number.isFinite(value)) fail(path, 'must be a finite number')
  return value
}

function numbers(value: unknown, path: string, length?: number): number[] {
  const values = array(value, path, length)
  if (values.length === 0) fail(path, 'must not be empty')
  values.forEach((v, i) => finite(v, at(path, i)))
  return values as number[]
}

function matrix(value: unknown, path: string, rows: number | undefined, cols: number, what: string): number[][] {
  const values = array(value, path, rows, what)
  if (values.length === 0) fail(path, 'must not be empty')
  values.forEach((row, i) => numbers(row, at(path, i), cols))
  return values as number[][]
}

function labels(value: unknown): Label[] {
  const classes = array(value, 'classes')
  if (classes.length < 2) fail('classes', 'must name at least two classes')
  const seen = new Set<string>()
  classes.forEach((label, i) => {
    const ok = (typeof label === 'string' && label !== '') || (typeof label === 'number' && Number.isFinite(label))
    if (!ok) fail(at('classes', i), 'must be a non-empty string or a finite number')
    // Probabilities are keyed by the label as a string, so 1 and "1" would collide.
    if (seen.has(String(label))) fail(at('classes', i), `repeats the label ${JSON.stringify(label)}`)
    seen.add(String(label))
  })
  return classes as Label[]
}

/** Checks a parsed model file completely (shapes and values) and returns it typed; `name` is what it must be called. */
export function parseModel(raw: unknown, name: string): ModelFile {
  if (!isObject(raw)) fail('', 'must be a JSON object')
  const kind = raw.kind
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) fail('kind', `must be one of ${KINDS.join(', ')}`)
  const fields = FIELDS[kind as Kind]
  for (const key of Object.keys(raw)) {
    if (!fields.includes(key)) fail(key, `is not a field of a ${kind} model (${fields.join(', ')})`)
  }
  if (raw.name !== name) fail('name', `must be ${JSON.stringify(name)}, the name of the file and URL`)
  if (typeof raw.version !== 'string' || raw.version.trim() === '' || raw.version.length > 128) fail('version', 'must be a non-empty string of at most 128 characters')
  if (raw.description !== undefined && typeof raw.description !== 'string') fail('description', 'must be a string')
  const features = array(raw.features, 'features')
  if (features.length === 0) fail('features', 'must name at least one feature')
  const seen = new Set<string>()
  features.forEach((feature, i) => {
    if (typeof feature !== 'string' || feature === '') fail(at('features', i), 'must be a non-empty string')
    if (seen.has(feature)) fail(at('features', i), `repeats the feature ${JSON.stringify(feature)}`)
    seen.add(feature)
  })
  const n = features.length
  // Field order as in the reference files, since an upload is written back in this order.
  const head = <K extends Kind>(kind: K) => ({
    name,
    version: raw.version as string,
    kind,
    ...(raw.description === undefined ? {} : { description: raw.description as string }),
    features: features as string[],
  })

  switch (kind as Kind) {
    case 'linear':
      return { ...head('linear'), coef: numbers(raw.coef, 'coef', n), intercept: finite(raw.intercept, 'intercept') }
    case 'logistic': {
      const classes = labels(raw.classes)
      const c = classes.length
      const k = c === 2 ? undefined : c
      const coef = matrix(raw.coef, 'coef', k, n, 'rows')
      if (coef.length !== c && !(coef.length === 1 && c === 2)) fail('coef', `has ${coef.length} rows for ${c} classes: expected ${c === 2 ? '1 or 2' : c}`)
      const intercept = numbers(raw.intercept, 'intercept', coef.length)
      return { ...head('logistic'), classes, coef, intercept }
    }
    case 'mlp': {
      const classes = raw.classes === undefined ? undefined : labels(raw.classes)
      const layers = parseLayers(raw.layers, n, classes)
      return { ...head('mlp'), ...(classes ? { classes } : {}), layers }
    }
  }
}

function parseLayers(value: unknown, nFeatures: number, classes: Label[] | undefined): DenseLayer[] {
  const list = array(value, 'layers')
  if (list.length === 0) fail('layers', 'must hold at least one layer')
  let nIn = nFeatures
  const layers = list.map((layer, k): DenseLayer => {
    const path = at('layers', k)
    if (!isObject(layer)) fail(path, 'must be an object { weights, bias, activation }')
    for (const key of Object.keys(layer)) {
      if (key !== 'weights' && key !== 'bias' && key !== 'activation') fail(at(path, key), 'is not a field of a layer (weights, bias, activation)')
    }
    const bias = numbers(layer.bias, at(path, 'bias'))
    const source = k === 0 ? 'features' : `outputs of layers[${k - 1}]`
    const weightsPath = at(path, 'weights')
    if (Array.isArray(layer.weights) && layer.weights.length !== nIn) {
      fail(weightsPath, `has ${layer.weights.length} rows, expected ${nIn} (one per ${source})`)
    }
    const weights = matrix(layer.weights, weightsPath, nIn, bias.length, 'rows')
    if (typeof layer.activation !== 'string' || !(ACTIVATIONS as readonly string[]).includes(layer.activation)) {
      fail(at(path, 'activation'), `must be one of ${ACTIVATIONS.join(', ')}`)
    }
    nIn = bias.length
    return { weights, bias, activation: layer.activation as DenseLayer['activation'] }
  })
  const last = layers.at(-1)!
  const lastPath = at('layers', layers.length - 1)
  const nOut = last.bias.length
  if (!classes) {
    if (nOut !== 1) fail(at(lastPath, 'bias'), `has ${nOut} outputs; a regressor (no classes) has 1`)
  } else if (nOut === 1 && classes.length === 2) {
    if (last.activation !== 'sigmoid') fail(at(lastPath, 'activation'), 'must be sigmoid: one output for two classes is the probability of the second')
  } else if (nOut === classes.length) {
    if (last.activation !== 'softmax') fail(at(lastPath, 'activation'), 'must be softmax: one output per class is a probability distribution')
  } else {
    fail(at(lastPath, 'bias'), `has ${nOut} outputs for ${classes.length} classes: expected ${classes.length}${classes.length === 2 ? ' or 1' : ''}`)
  }
  return layers
}
