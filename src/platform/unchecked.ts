// Response schemas that document a route (OpenAPI, Eden's types) without being checked on every
// response: for bodies the service builds itself from typed rows, where a second validation pass
// costs a fifth of a small read and can find nothing. The tests check responses against the
// document instead (test/fuzz.test.ts, and whole-object assertions).
import type { TSchema } from '@sinclair/typebox'

/** Marks `schema` so Elysia skips checking responses against it; invisible in the OpenAPI document. */
export function unchecked<T extends TSchema>(schema: T): T {
  // Elysia reads `noValidate` off a response schema; non-enumerable, it stays out of the document.
  Object.defineProperty(schema, 'noValidate', { value: true, enumerable: false })
  return schema
}
