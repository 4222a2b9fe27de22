// A value that may or may not have to be awaited: the embedded stores answer synchronously, the
// shared ones (PostgreSQL, Redis) with promises, and code over both stays synchronous when it can.
export type Awaitable<T> = T | Promise<T>

/** `next(value)`, at once when `value` is not a promise: a synchronous store answers in the same step. */
export function chain<T, R>(value: Awaitable<T>, next: (value: T) => Awaitable<R>): Awaitable<R> {
  return value instanceof Promise ? value.then(next) : next(value)
}
