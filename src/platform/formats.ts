// String formats used by the schemas, registered with TypeBox. @elysiajs/openapi
// bundles a schema mapper that replaces the global `date` format with one that
// builds a zod schema on every check (~5 µs per field); this puts cheap, strict
// checks back. Call it after @elysiajs/openapi has been imported.
import { FormatRegistry } from '@sinclair/typebox'

const dateShape = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/
const dateTimeShape = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/
const monthDays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

// Arithmetic only: these run for every date in every response, so no Date objects.
function dayExists(value: string): boolean {
  const year = Number(value.slice(0, 4))
  const month = Number(value.slice(5, 7))
  const day = Number(value.slice(8, 10))
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= (month === 2 && leap ? 29 : monthDays[month - 1]!)
}

/** A real calendar day written YYYY-MM-DD. */
export function isCalendarDate(value: string): boolean {
  return dateShape.test(value) && dayExists(value)
}

/** An RFC 3339 date-time on a real calendar day. */
export function isDateTime(value: string): boolean {
  return dateTimeShape.test(value) && dayExists(value)
}

export function registerFormats(): void {
  FormatRegistry.Set('date', isCalendarDate)
  FormatRegistry.Set('date-time', isDateTime)
}

// Recently formatted instants: a row's created_at and updated_at are often equal, and the same rows
// are read again and again. Bounded; cleared whole when full.
const isoCache = new Map<number, string>()

/** `new Date(ms).toISOString()`, formatted once per distinct instant while it is in the cache. */
export function isoTime(ms: number): string {
  let text = isoCache.get(ms)
  if (text === undefined) {
    if (isoCache.size >= 16_384) isoCache.clear()
    isoCache.set(ms, (text = new Date(ms).toISOString()))
  }
  return text
}
