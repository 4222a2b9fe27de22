// The service's structured JSON logger.
import pino from 'pino'
import type { LogLevel } from '../config'

export type Logger = pino.Logger

export function createLogger(level: LogLevel | 'silent', base: Record<string, unknown> = {}): Logger {
  // Asynchronous writes: an access line per request must not cost a blocking write(2) each.
  const destination = pino.destination({ dest: 1, sync: false })
  return pino({ level, base: { service: 'taskmesh', ...base }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
}

/** Writes out what is still buffered; call before the process exits. */
export function flushLog(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()))
}
