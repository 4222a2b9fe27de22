// Checked by .ci/run against the client openapi-typescript generates from the live /openapi.json:
// a response without a body (101, 204, 304) has no content, and every other one names its media
// types. A failing operation shows up in the compile error as [operation, status, what is wrong].
import type { operations } from './openapi'

type Bodiless = 101 | 204 | 304
type MediaType = `${string}/${string}`

type Wrong<Operation, Status, Response> = Status extends Bodiless
  ? Response extends { content?: never } ? never : [Operation, Status, 'a bodiless status has content']
  : Response extends { content: infer Content }
    ? [keyof Content] extends [never] ? [Operation, Status, 'no media type']
      : Exclude<keyof Content, MediaType> extends never ? never : [Operation, Status, 'not a media type', Exclude<keyof Content, MediaType>]
    : [Operation, Status, 'no content']

type Problems = {
  [O in keyof operations]: {
    [S in keyof operations[O]['responses']]: Wrong<O, S, operations[O]['responses'][S]>
  }[keyof operations[O]['responses']]
}[keyof operations]

// Compiles only while nothing is wrong; the error names what is.
export declare function none<T extends never>(): void
none<Problems>()
