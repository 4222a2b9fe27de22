// The seam between a subscription's replay and the live frames after it, so each reading reaches
// the subscriber once: the history after `since`, then what was delivered here meanwhile.
import { chain, type Awaitable, type Feed } from './feed'

export interface Replay {
  epoch: string
  recovered: boolean
  /** The frames to send, oldest first. */
  frames: string[]
}

interface Waiter {
  epoch: string
  seq: number
  resolve: (reached: boolean) => void
}

export class Recovery {
  /** Subscriptions waiting for the live feed to bring a topic up to a seq. */
  private readonly waiters = new Map<string, Waiter[]>()

  constructor(private readonly feed: Feed, private readonly waitMs = 1000) {}

  /**
   * What a subscription with `since`/`epoch` gets: the state to report and the frames to replay.
   * Synchronous over a memory feed, so the caller can join the live topic in the same step.
   * A shared feed's history may be ahead of what its live feed has brought here: the replay
   * waits until it has, then adds the frames delivered since, and everything later comes live.
   */
  replay(topic: string, since?: number, epoch?: string): Awaitable<Replay> {
    return chain(this.feed.epoch(topic), (current) => {
      const lost: Replay = { epoch: current, recovered: false, frames: [] }
      if (since === undefined) return { epoch: current, recovered: true, frames: [] }
      if (epoch !== undefined && epoch !== current) return lost
      return chain(this.feed.range(topic, since, this.feed.historySize), (range) => {
        // No history yet (`current` is the epoch it will start in): complete from 0.
        const complete = (range.epoch ?? current) === current && since >= range.first - 1 && since <= range.last && range.frames.length === range.last - since
        if (!complete) return lost
        return chain(range.last === 0 || this.reached(topic, current, range.last), (reached) => {
          const newer = reached ? this.feed.delivered.newer(topic, current, range.last) : null
          return newer ? { epoch: current, recovered: true, frames: [...range.frames, ...newer] } : lost
        })
      })
    })
  }

  /** A frame was delivered here: wakes the replays waiting for it. */
  delivered(topic: string, epoch: string, seq: number): void {
    const waiting = this.waiters.get(topic)
    if (!waiting) return
    const still = waiting.filter((waiter) => {
      if (waiter.epoch !== epoch || waiter.seq > seq) return true
      waiter.resolve(true)
      return false
    })
    if (still.length) this.waiters.set(topic, still)
    else this.waiters.delete(topic)
  }

  /** True once `seq` of `epoch` has been delivered here; false after `waitMs` without it. */
  private reached(topic: string, epoch: string, seq: number): Awaitable<boolean> {
    if (this.feed.delivered.holds(topic, epoch, seq)) return true
    const { promise, resolve } = Promise.withResolvers<boolean>()
    const waiting = this.waiters.get(topic) ?? []
    const waiter = { epoch, seq, resolve }
    waiting.push(waiter)
    this.waiters.set(topic, waiting)
    setTimeout(() => {
      const list = this.waiters.get(topic)
      if (list?.includes(waiter)) list.splice(list.indexOf(waiter), 1)
      resolve(false)
    }, this.waitMs).unref()
    return promise
  }
}
