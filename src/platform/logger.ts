// The service's structured JSON logger.
import pino from 'pino'
import type { LogLevel } from '../config'

export type Logger = pino.Logger

export function createLogger(level: LogLevel | 'silent'): Logger {
  return pino({ level, base: { service: 'taskmesh' }, timestamp: pino.stdTimeFunctions.isoTime })
}
