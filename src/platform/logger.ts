// The service's structured JSON logger, and the hand-formatted access line.
import pino from 'pino'
import type { LogLevel } from '../config'

export type Logger = pino.Logger

// Loggers made here, which write to stdout: only those get the hand-formatted access line.
const destinations = new WeakSet<Logger>()

// Access lines are kept as their fields and formatted together, then written through Bun's own
// stdout writer, every 100 ms (or every 256 lines, and at exit): whole lines, so they interleave with
// pino's only between lines. Formatting them in one loop costs less than a line in each request.
let accessSink: ReturnType<typeof Bun.stdout.writer> | null = null
const formatters: Array<() => string> = []

function flushPending(): void {
  if (!accessSink) return
  let text = ''
  for (const format of formatters) text += format()
  if (text === '') return
  accessSink.write(text)
  accessSink.flush()
}

function sink(): void {
  if (accessSink) return
  accessSink = Bun.stdout.writer({ highWaterMark: 64 * 1024 })
  setInterval(flushPending, 100).unref()
}

export function createLogger(level: LogLevel | 'silent', base: Record<string, unknown> = {}): Logger {
  // Asynchronous writes: an access line per request must not cost a blocking write(2) each.
  const destination = pino.destination({ dest: 1, sync: false })
  const log = pino({ level, base: { service: 'taskmesh', ...base }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
  destinations.add(log)
  return log
}

/** Writes out what is still buffered; call before the process exits. */
export async function flushLog(log: Logger): Promise<void> {
  flushPending()
  await accessSink?.flush()
  await new Promise<void>((resolve) => log.flush(() => resolve()))
}

// Characters JSON must escape in a string; request ids, routes and most paths have none.
const needsEscape = /["\\\u0000-\u001f]/
const quoted = (text: string) => (needsEscape.test(text) ? JSON.stringify(text) : `"${text}"`)

/** One line per request: request id, method, route template, path, status, duration and key id (never the key). */
export type AccessLog = (requestId: string | undefined, method: string, route: string, path: string, status: number, durationMs: number, keyId: string | undefined) => void

/**
 * One access line per request, in the same shape as the logger's own lines, formatted by hand
 * (pino's generic serialization was a sixth of the CPU of a small read): the time is formatted
 * once per millisecond, routes once each. Null when the logger does not log at info.
 */
export function accessLog(log: Logger): AccessLog | null {
  if (!destinations.has(log) || !log.isLevelEnabled('info')) return null
  sink()
  const bindings = JSON.stringify(log.bindings()).slice(1, -1)
  const prefix = `{"level":30,${bindings ? `${bindings},` : ''}"time":"`
  const routes = new Map<string, string>()
  let lastMs = -1
  let lastTime = ''
  // Eight fields per line, in the order of the function's parameters, the time first.
  let fields: unknown[] = []
  formatters.push(() => {
    const taken = fields
    fields = []
    let text = ''
    for (let i = 0; i < taken.length; i += 8) {
      const now = taken[i] as number
      if (now !== lastMs) {
        lastMs = now
        lastTime = new Date(now).toISOString()
      }
      const requestId = taken[i + 1] as string | undefined
      const route = taken[i + 3] as string
      const keyId = taken[i + 7] as string | undefined
      let routeJson = routes.get(route)
      if (routeJson === undefined) routes.set(route, (routeJson = JSON.stringify(route)))
      text += `${prefix}${lastTime}","requestId":${requestId === undefined ? 'null' : quoted(requestId)},"method":"${taken[i + 2] as string}","route":${routeJson},"path":${quoted(taken[i + 4] as string)},"status":${taken[i + 5] as number},"durationMs":${Math.round((taken[i + 6] as number) * 100) / 100},"keyId":${keyId ? `"${keyId}"` : 'null'},"msg":"request"}\n`
    }
    return text
  })
  return (requestId, method, route, path, status, durationMs, keyId) => {
    fields.push(Date.now(), requestId, method, route, path, status, durationMs, keyId)
    if (fields.length >= 8 * 256) flushPending()
  }
}
