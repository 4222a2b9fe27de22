// Integers that arrive as text (a path segment, a query parameter), checked by one regular
// expression and read with Number(). Elysia's own coercion decodes such values by walking the
// schema for every request, which cost a quarter of a small read; these compile to one call.
// The OpenAPI document still shows an integer.
import { Kind, type TSchema, TypeRegistry, type TUnsafe, Type } from '@sinclair/typebox'

const DECIMAL = 'taskmesh/Decimal'
const digits = /^(0|[1-9][0-9]{0,15})$/

interface DecimalSchema extends TSchema {
  minimum: number
  maximum: number
}

TypeRegistry.Set<DecimalSchema>(DECIMAL, (schema, value) => {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= schema.minimum && value <= schema.maximum
  if (typeof value !== 'string' || !digits.test(value)) return false
  const number = Number(value)
  return number >= schema.minimum && number <= schema.maximum
})

/**
 * A plain decimal integer from `minimum` to `maximum` (no sign, exponent, hex or leading zeros),
 * typed as the text it arrives as: read it with `Number()`.
 */
export function decimal(options: { minimum: number; maximum: number; error: string; description?: string; default?: number }): TUnsafe<string> {
  return Type.Unsafe<string>({ ...options, type: 'integer', [Kind]: DECIMAL })
}
