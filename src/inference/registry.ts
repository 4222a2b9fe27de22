// The models being served: every model file of MODELS_DIR (NAME.json, or NAME.xgb.json: a booster as XGBoost
// saves it), validated, compiled into the WASM kernel and swapped in atomically when its file changes (fs.watch,
// and a poll as a safety net) or is uploaded (PUT). A file that fails validation is listed under `rejected`; whatever version of it
// was serving before keeps serving.
import { type FSWatcher, watch } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../platform/logger'
import { digestOf, isModelFile, removeFile, modelFiles, nameOf, readFailure, siblingOf, stampOf, writeAtomically, XGB_SUFFIX } from './folder'
import { Kernel, KERNEL_MEMORY_LIMIT, KernelMemoryError } from './kernel'
import { compileModel, type LoadedModel, loadModel, prepareUpload } from './loaded-model'
import { isModelName, MAX_MODELS, MODEL_NAME_RULE, ModelLimitError } from './model'
import { ModelFileError, parseJson } from './model-file'
import { ModelTooLargeError } from './model-trees'

export interface Rejection {
  file: string
  message: string
}

export interface RegistryOptions {
  dir: string
  log: Logger
  /** Quiet time after the last change to a file before it is reloaded. */
  debounceMs?: number
  /** While watching, how often the folder is also polled for what fs.watch misses (network file systems). */
  pollMs?: number
  /** Most linear memory the kernel may grow to (KERNEL_MEMORY_LIMIT unless given). */
  kernelMemory?: number
}

export class ModelRegistry {
  /** True once the initial load finished (the readiness check `models`). */
  ready = false
  readonly dir: string
  private readonly log: Logger
  private readonly debounceMs: number
  private readonly pollMs: number
  private readonly kernelMemory: number
  private readonly models = new Map<string, LoadedModel>()
  private readonly rejected = new Map<string, Rejection>()
  /** Bumped by every change applied to a name; a reload that started before a newer change is dropped. */
  private readonly generations = new Map<string, number>()
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()
  /** Files refused only because MAX_MODELS models were loaded: read again when one goes. */
  private readonly overLimit = new Set<string>()
  /** File → modification time and size when it was last read, so a poll reads only what changed. */
  private readonly stamps = new Map<string, string>()
  private poller: ReturnType<typeof setInterval> | undefined
  private kernel: Kernel | undefined
  private kernelLoading: Promise<Kernel> | undefined
  private watcher: FSWatcher | undefined
  private writes: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor({ dir, log, debounceMs = 50, pollMs = 5000, kernelMemory = KERNEL_MEMORY_LIMIT }: RegistryOptions) {
    this.dir = dir
    this.log = log
    this.debounceMs = debounceMs
    this.pollMs = pollMs
    this.kernelMemory = kernelMemory
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
    return this.rejected.get(`${name}.json`) ?? this.rejected.get(`${name}${XGB_SUFFIX}`)
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
   * Validates and compiles `raw` as model `name`, writes it to `<name>.json` (a booster: `<name>.xgb.json`; temp file,
   * fsync, rename) and serves it before resolving. Throws (and nothing changes) ModelFileError when invalid, ModelLimitError
   * for a new name past MAX_MODELS, KernelMemoryError when its weights do not fit, ModelTooLargeError past MAX_TREE_NODES.
   */
  put(name: string, raw: unknown): Promise<{ model: LoadedModel; created: boolean }> {
    return this.exclusive(async () => {
      const kernel = await this.kernelReady()
      if (!isModelName(name)) throw new ModelFileError('name', `must match ${MODEL_NAME_RULE}`)
      if (!this.models.has(name) && this.models.size >= MAX_MODELS) throw new ModelLimitError()
      const { spec, text, file, source } = prepareUpload(raw, name)
      const model = compileModel(kernel, spec, digestOf(text), source, file)
      try {
        await writeAtomically(this.dir, file, text)
        // One file per name: a booster replaces NAME.json and a model file of ours NAME.xgb.json.
        await removeFile(join(this.dir, siblingOf(file)))
      } catch (error) {
        kernel.release(model.net)
        throw error
      }
      const created = !this.models.has(name)
      this.install(model)
      for (const other of [file, siblingOf(file)]) {
        this.rejected.delete(other)
        this.overLimit.delete(other)
      }
      this.log.info({ model: name, version: model.version, created }, 'model uploaded')
      this.changed(name)
      return { model, created }
    })
  }

  /** Removes the model and its file; false when neither existed. */
  remove(name: string): Promise<boolean> {
    return this.exclusive(async () => {
      const files = [`${name}.json`, `${name}${XGB_SUFFIX}`]
      let existed = this.models.has(name) || files.some((file) => this.rejected.has(file))
      if (isModelName(name)) {
        for (const file of files) if (await removeFile(join(this.dir, file))) existed = true
      }
      this.uninstall(name)
      for (const file of files) this.rejected.delete(file)
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
    this.kernelLoading ??= Kernel.load({ memoryLimit: this.kernelMemory }).then((kernel) => (this.kernel = kernel))
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
    const files = await modelFiles(this.dir)
    const changed: string[] = []
    await Promise.all(files.map(async (file) => {
      const stamp = await stampOf(join(this.dir, file)).catch(() => null)
      if (stamp !== null && this.stamps.get(file) !== stamp) changed.push(file)
    }))
    const present = new Set(files)
    for (const file of this.stamps.keys()) if (!present.has(file)) changed.push(file)
    for (const file of changed) this.schedule(file)
    return changed.sort()
  }

  /** Brings every file of the folder, and every model whose file is gone, up to date. */
  private async rescan(): Promise<void> {
    const files = new Set(await modelFiles(this.dir))
    for (const model of this.models.values()) files.add(model.file)
    for (const file of this.rejected.keys()) files.add(file)
    await Promise.all([...files].map((file) => this.sync(file)))
  }

  /**
   * Reloads one file: unloads its model when it is gone, keeps the old version when it is invalid. A model's name is its
   * file name without `.json` or `.xgb.json` (parseModel holds the `name` inside to it): a URL, a file and a model are one.
   */
  private async sync(file: string): Promise<void> {
    const name = nameOf(file)
    const generation = this.bump(name)
    const path = join(this.dir, file)
    let text: string | null
    try {
      // Stamped before reading: a write after the stat changes the stamp again, so a poll catches it.
      this.stamps.set(file, await stampOf(path))
      text = await readFile(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return this.reject(file, generation, `cannot be read: ${readFailure(error)}`)
      this.stamps.delete(file)
      text = null
    }
    // NAME.json wins over NAME.xgb.json: one name, one model.
    const shadowed = text !== null && file.endsWith(XGB_SUFFIX) && (await stampOf(join(this.dir, siblingOf(file))).then(() => true, () => false))
    // Not this.reject: the sibling's own load moves the name's generation on, and this holds whatever it does.
    if (shadowed) return void this.rejected.set(file, { file, message: `${siblingOf(file)} defines the same model and is served instead; remove one of them` })
    const kernel = await this.kernelReady()
    // Something newer (an upload, a later event) already decided what this name serves.
    if (this.generations.get(name) !== generation || this.closed) return
    if (text === null) {
      this.rejected.delete(file)
      if (this.models.get(name)?.file === file) {
        this.uninstall(name)
        this.log.info({ model: name, file }, 'model file removed: unloaded')
        this.schedule(siblingOf(file))
      }
      return
    }
    const digest = digestOf(text)
    if (this.models.get(name)?.digest === digest) return void this.rejected.delete(file)
    let model: LoadedModel
    try {
      if (!isModelName(name)) throw new ModelFileError('', `the file name must be a model name (${MODEL_NAME_RULE}) followed by .json`)
      if (!this.models.has(name) && this.models.size >= MAX_MODELS) throw new ModelLimitError()
      model = loadModel(kernel, parseJson(text), name, digest, file)
    } catch (error) {
      if (![ModelFileError, ModelLimitError, KernelMemoryError, ModelTooLargeError].some((type) => error instanceof type)) throw error
      if (error instanceof ModelLimitError) this.overLimit.add(file)
      return this.reject(file, generation, (error as Error).message)
    }
    this.overLimit.delete(file)
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

  // Nets are only ever run synchronously right after `get()` (see service.ts), so a request never
  // sees a net released under it: the new version is compiled before the swap and the old one is
  // released right after it, in the same turn of the event loop.
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
    // A place is free: a file refused for want of one may load now.
    if (!this.closed) for (const file of this.overLimit) this.schedule(file)
  }
}
