import { expect, test } from 'bun:test'
import { isCalendarDate, isDateTime } from '../src/platform/formats'
test('formats', () => {
  for (const v of ['2024-02-29', '2000-02-29', '2030-12-31', '2030-01-01']) expect(isCalendarDate(v)).toBe(true)
  for (const v of ['2023-02-29', '1900-02-29', '2030-04-31', '2030-13-01', '2030-00-10', '2030-1-01', '30/01/2030', '2030-01-32', '2030-01-00']) expect(isCalendarDate(v)).toBe(false)
  for (const v of ['2026-11-28T04:00:00.000Z', '2026-11-28T04:00:00+02:00', '2024-02-29T23:59:59Z']) expect(isDateTime(v)).toBe(true)
  for (const v of ['2026-11-28', '2023-02-29T00:00:00Z', '2026-11-28T24:00:00Z', 'x']) expect(isDateTime(v)).toBe(false)
})
