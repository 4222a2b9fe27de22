// The models folder on disk: which of its files are model files, how a change to one is noticed
// (modification time and size), and writing one atomically so no reader ever sees half a file.
import { open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/** Hidden files (editor swap and lock files, our own temp files) and other extensions are not model files. */
export const isModelFile = (file: string) => file.endsWith('.json') && !file.startsWith('.') && !file.startsWith('#')
/** A booster as XGBoost saves it: served as model NAME, beside (and below) NAME.json. */
export const XGB_SUFFIX = '.xgb.json'
export const nameOf = (file: string) => file.slice(0, -(file.endsWith(XGB_SUFFIX) ? XGB_SUFFIX : '.json').length)
/** The other file a model's name may come from: NAME.json ↔ NAME.xgb.json. */
export const siblingOf = (file: string) => (file.endsWith(XGB_SUFFIX) ? `${nameOf(file)}.json` : `${nameOf(file)}${XGB_SUFFIX}`)
/** Hash of a file's text, to skip reloading an unchanged file. */
export const digestOf = (text: string) => Bun.hash(text).toString(36)

/** The model files of `dir`, unsorted. */
export async function modelFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(isModelFile)
}

/** A file's modification time and size as one string: when it differs, the file changed. Rejects like stat. */
export async function stampOf(path: string): Promise<string> {
  const info = await stat(path)
  return `${info.mtimeMs}:${info.size}`
}

/** Temp file, fsync, rename over `file`, then fsync the folder so the rename is durable too. */
export async function writeAtomically(dir: string, file: string, text: string): Promise<void> {
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
  const folder = await open(dir, 'r')
  try {
    await folder.sync()
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await folder.close()
  }
}

/** Deletes a file; false when there was none. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    return false
  }
}

/** Why a file could not be read, in plain words: the error's own text names server paths. */
export function readFailure(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EACCES': case 'EPERM': return 'permission denied'
    case 'EISDIR': return 'it is a directory'
    case 'ELOOP': return 'too many symbolic links'
    case 'EMFILE': case 'ENFILE': return 'too many open files'
    default: return `the file system refused (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})`
  }
}
