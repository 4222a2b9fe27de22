// The WAL checkpointer's thread (see checkpointer.ts): its own connection to the database file, and
// a PASSIVE checkpoint whenever the log holds frames not yet copied back. A PASSIVE checkpoint never
// waits on the serving connection's locks, and its fsync blocks this thread, not the event loop.
import { Database } from 'bun:sqlite'

declare const self: Worker

interface Start {
  path: string
  intervalMs: number
}

let db: Database | null = null
let timer: ReturnType<typeof setInterval> | null = null

function checkpoint(): void {
  try {
    db?.run('PRAGMA wal_checkpoint(PASSIVE)')
  } catch {
    // Busy or briefly unavailable: the next tick tries again (and the serving connection's own
    // autocheckpoint stays as a backstop, checkpointer.ts).
  }
}

self.onmessage = (event: MessageEvent<Start | 'stop'>) => {
  if (event.data === 'stop') {
    if (timer) clearInterval(timer)
    checkpoint()
    db?.close()
    db = null
    postMessage('stopped')
    return
  }
  const { path, intervalMs } = event.data
  db = new Database(path)
  db.run('PRAGMA busy_timeout = 1000')
  timer = setInterval(checkpoint, intervalMs)
  postMessage('started')
}
