// Waiting in tests on a condition rather than for time to pass: `eventually` checks again and
// again until the condition holds, and fails with what it was waiting for when it never does.

export interface EventuallyOptions {
  /** What the test waits for, for the error message ("version 2 serves"). */
  what: string
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number
  /** Pause between two checks (default 5 ms); longer where each check costs the system under test. */
  intervalMs?: number
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

/** Resolves with the first truthy result of `check`; rejects once `timeoutMs` has passed without one. */
export async function eventually<T>(check: () => T | Promise<T>, options: EventuallyOptions): Promise<Truthy<T>> {
  const { what, timeoutMs = 5000, intervalMs = 5 } = options
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const result = await check()
    if (result) return result as Truthy<T>
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await Bun.sleep(intervalMs)
  }
}
