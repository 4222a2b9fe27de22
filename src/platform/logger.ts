// The service's structured JSON logger.
import pino from 'pino'
import type { LogLevel } from '../config'

export type Logger = pino.Logger

export function createLogger(level: LogLevel | 'silent', base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'taskmesh', ...base }, timestamp: pino.stdTimeFunctions.isoTime })
}
