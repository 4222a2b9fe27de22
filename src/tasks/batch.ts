// Batching by event-loop turn: what is submitted during one turn is handed over at once, in
// order, right after the turn's I/O (setImmediate, no timer), and each submitter's promise
// settles with its own outcome. The SQLite group commit and PostgreSQL's multi-row create use it.

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown }

export const failed = (error: unknown): Outcome<never> => ({ ok: false, error })

/** What a handler does with one batch: one outcome per item, in the items' order. */
export type BatchHandler<In, Out> = (items: In[]) => Outcome<Out>[] | Promise<Outcome<Out>[]>

export class TurnBatch<In, Out> {
  private items: In[] = []
  private waiters: Array<PromiseWithResolvers<Out>> = []
  private scheduled = false

  /** `max` bounds one batch; the rest of a larger burst goes in the next one. */
  constructor(private readonly handle: BatchHandler<In, Out>, private readonly max: number) {}

  add(item: In): Promise<Out> {
    const waiter = Promise.withResolvers<Out>()
    this.items.push(item)
    this.waiters.push(waiter)
    if (!this.scheduled) {
      this.scheduled = true
      // After the I/O phase, not a microtask: every request parsed in this turn joins the batch,
      // and a lone item waits for nothing but the rest of the turn.
      setImmediate(this.flush)
    }
    return waiter.promise
  }

  private readonly flush = (): void => {
    const items = this.items.splice(0, this.max)
    const waiters = this.waiters.splice(0, this.max)
    if (this.items.length > 0) setImmediate(this.flush)
    else this.scheduled = false
    const settle = (outcomes: Outcome<Out>[]) => {
      waiters.forEach((waiter, i) => {
        const outcome = outcomes[i] ?? failed(new Error('the batch handler returned no outcome for this item'))
        if (outcome.ok) waiter.resolve(outcome.value)
        else waiter.reject(outcome.error)
      })
    }
    const everyone = (error: unknown) => settle(items.map(() => failed(error)))
    try {
      const outcomes = this.handle(items)
      if (Array.isArray(outcomes)) settle(outcomes)
      else outcomes.then(settle, everyone)
    } catch (error) {
      everyone(error)
    }
  }
}
