// String formats used by the schemas, registered with TypeBox. @elysiajs/openapi
// bundles a schema mapper that replaces the global `date` format with one that
// builds a zod schema on every check (~5 µs per field); this puts cheap, strict
// checks back. Call it after @elysiajs/openapi has been imported.
import { FormatRegistry } from '@sinclair/typebox'

const dateShape = /^(\d{4})-(\d{2})-(\d{2})$/
const dateTimeShape = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/
const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate()

/** A real calendar day written YYYY-MM-DD. */
export function isCalendarDate(value: string): boolean {
  const match = dateShape.exec(value)
  if (!match) return false
  const month = Number(match[2])
  const day = Number(match[3])
  return month >= 1 && month <= 12 && day >= 1 && day <= daysIn(Number(match[1]), month)
}

export function registerFormats(): void {
  FormatRegistry.Set('date', isCalendarDate)
  FormatRegistry.Set('date-time', (value) => dateTimeShape.test(value) && isCalendarDate(value.slice(0, 10)) && !Number.isNaN(Date.parse(value)))
}
