// The service's structured JSON logger, and the hand-formatted access line.
import pino from 'pino'
import type { LogLevel } from '../config'

export type Logger = pino.Logger

const destinations = new WeakMap<Logger, pino.DestinationStream & { write(line: string): unknown }>()

// Access lines go through Bun's own buffered stdout writer: whole lines, flushed
// every 100 ms and at exit, so they interleave with pino's lines only between lines.
let accessSink: ReturnType<typeof Bun.stdout.writer> | null = null
function sink() {
  if (!accessSink) {
    accessSink = Bun.stdout.writer({ highWaterMark: 64 * 1024 })
    setInterval(() => accessSink?.flush(), 100).unref()
  }
  return accessSink
}

export function createLogger(level: LogLevel | 'silent', base: Record<string, unknown> = {}): Logger {
  // Asynchronous writes: an access line per request must not cost a blocking write(2) each.
  const destination = pino.destination({ dest: 1, sync: false })
  const log = pino({ level, base: { service: 'taskmesh', ...base }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
  destinations.set(log, destination)
  return log
}

/** Writes out what is still buffered; call before the process exits. */
export async function flushLog(log: Logger): Promise<void> {
  await accessSink?.flush()
  await new Promise<void>((resolve) => log.flush(() => resolve()))
}

export interface AccessEntry {
  requestId: string | undefined
  method: string
  route: string
  path: string
  status: number
  durationMs: number
  keyId: string | undefined
}

/**
 * One access line per request, in the same shape as the logger's own lines, formatted
 * by hand: pino's generic serialization was a sixth of the CPU of a small read.
 * Null when the logger does not log at info.
 */
export function accessLog(log: Logger): ((entry: AccessEntry) => void) | null {
  if (!destinations.has(log) || !log.isLevelEnabled('info')) return null
  const out = sink()
  const bindings = JSON.stringify(log.bindings()).slice(1, -1)
  const prefix = `{"level":30,${bindings ? `${bindings},` : ''}"time":"`
  return ({ requestId, method, route, path, status, durationMs, keyId }) => {
    out.write(`${prefix}${new Date().toISOString()}","requestId":${JSON.stringify(requestId ?? null)},"method":"${method}","route":${JSON.stringify(route)},"path":${JSON.stringify(path)},"status":${status},"durationMs":${durationMs},"keyId":${keyId ? `"${keyId}"` : 'null'},"msg":"request"}\n`)
  }
}
