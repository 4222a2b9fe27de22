// WAL checkpoints off the event loop. SQLite checkpoints inside whichever commit takes the log past
// `wal_autocheckpoint` pages: that commit then copies the log back into the database and fsyncs it
// while every other request waits. The serving connection instead keeps a high autocheckpoint (a
// backstop only) and a worker thread with its own connection checkpoints every CHECKPOINT_EVERY_MS.
// Durability is unchanged: a commit is in the WAL before it returns, as before.
import type { Database } from 'bun:sqlite'

export const CHECKPOINT_EVERY_MS = 100
/** The serving connection's autocheckpoint while the worker runs: only if the worker falls far behind. */
export const BACKSTOP_PAGES = 10_000
const DEFAULT_PAGES = 1000

/** Where a worker that did not start is reported (the service's logger). */
export interface Warnings {
  warn(detail: { err?: unknown }, message: string): void
}

export interface Checkpointer {
  /** Stops the worker after a last checkpoint; the serving connection checkpoints as SQLite does by itself again. */
  stop(): Promise<void>
}

/**
 * The worker's module. In the single-file executable (package.json's build lists it as a second
 * entrypoint) modules live under their path from src/, the entrypoints' common folder, and a URL
 * relative to this module names nothing; from source it is the file beside this one.
 */
function workerEntry(): string | URL {
  return import.meta.url.startsWith('file:///$bunfs/') ? './db/checkpoint-worker.ts' : new URL('./checkpoint-worker.ts', import.meta.url)
}

/** True once the worker posts `expected`; false if it fails or stays silent for `timeoutMs`. Leaves no listener behind. */
function answer(worker: Worker, expected: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (answered: boolean) => {
      clearTimeout(timer)
      worker.removeEventListener('message', listen)
      worker.removeEventListener('error', fail)
      resolve(answered)
    }
    const listen = (event: MessageEvent) => {
      if (event.data === expected) settle(true)
    }
    const fail = () => settle(false)
    const timer = setTimeout(fail, timeoutMs)
    worker.addEventListener('message', listen)
    worker.addEventListener('error', fail)
  })
}

/**
 * Starts checkpointing `path` from a worker thread; `serving` is the connection requests use. If the
 * worker cannot start, nothing changes (SQLite keeps checkpointing inside commits) and a warning says so.
 */
export async function startCheckpointer(serving: Database, path: string, log?: Warnings): Promise<Checkpointer> {
  let worker: Worker
  try {
    worker = new Worker(workerEntry())
  } catch (error) {
    log?.warn({ err: error }, 'the WAL checkpointer thread did not start; commits checkpoint as SQLite does')
    return { stop: async () => undefined }
  }
  const started = answer(worker, 'started', 5000)
  worker.postMessage({ path, intervalMs: CHECKPOINT_EVERY_MS })
  if (!(await started)) {
    worker.terminate()
    log?.warn({}, 'the WAL checkpointer thread did not start; commits checkpoint as SQLite does')
    return { stop: async () => undefined }
  }
  serving.run(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`)
  // The thread alone never keeps the process alive.
  worker.unref()
  return {
    async stop() {
      const stopped = answer(worker, 'stopped', 5000)
      worker.postMessage('stop')
      await stopped
      worker.terminate()
      serving.run(`PRAGMA wal_autocheckpoint = ${DEFAULT_PAGES}`)
    },
  }
}
