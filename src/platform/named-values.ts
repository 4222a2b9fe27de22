// An object of values by name (one row of features), checked to be an object and no more: the
// handler checks every name and value itself. TypeBox's Record tests each key against a pattern
// that no key of a JSON object fails, a loop per request for nothing; this documents the same map.
import { Kind, type TSchema, TypeRegistry, type TUnsafe, Type } from '@sinclair/typebox'

const NAMED_VALUES = 'taskmesh/NamedValues'

TypeRegistry.Set(NAMED_VALUES, (_schema, value) => typeof value === 'object' && value !== null && !Array.isArray(value))

/** An object whose values are each `values` (documented, checked by the handler), under any names. */
export function namedValues(values: TSchema, options: { description?: string; examples?: unknown[] } = {}): TUnsafe<Record<string, unknown>> {
  // `error`: the 422 says what TypeBox's Record says of a value that is not an object.
  return Type.Unsafe<Record<string, unknown>>({ ...options, type: 'object', additionalProperties: values, error: 'Expected object', [Kind]: NAMED_VALUES })
}
