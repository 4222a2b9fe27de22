// Process lifecycle: work each feature needs done before the port opens, readiness while
// serving, then a graceful drain on SIGTERM. Features register their own steps here, so the
// entry point only calls start() and shutdown().
import type { Server } from 'bun'
import type { Logger } from './logger'

export class Lifecycle {
  /** False once shutdown begins: /readyz answers 503 and responses close their connection. */
  accepting = true
  private readonly closers: Array<() => void | Promise<void>> = []
  private readonly starters: Array<() => void | Promise<void>> = []
  private readonly drainers: Array<() => void> = []

  /** Runs in `start()`, before the port opens (loading models, following a shared feed). */
  onStart(step: () => void | Promise<void>): void {
    this.starters.push(step)
  }

  /** Runs in order; the entry point awaits it before listening. */
  async start(): Promise<void> {
    for (const step of this.starters) await step()
  }

  /** Runs as shutdown begins, before requests drain (closing sockets, which a server stop would wait for). */
  onDrain(drain: () => void): void {
    this.drainers.push(drain)
  }

  /** Runs at shutdown after requests drain (e.g. closing sockets with 1001, the database). */
  onShutdown(close: () => void | Promise<void>): void {
    this.closers.push(close)
  }

  /**
   * Stop taking work without dropping any: answer everything already sent with
   * `Connection: close` until nothing is in flight and nothing new arrived for a
   * moment (at most a few such moments: under steady load there is never a quiet one),
   * then stop listening, let what is in flight finish and run the closers. Bounded by
   * `timeoutMs`, after which open connections are closed.
   */
  async shutdown(server: Server<unknown> | undefined | null, { timeoutMs, log, quietMs = 200 }: { timeoutMs: number; log: Logger; quietMs?: number }): Promise<void> {
    this.accepting = false
    for (const drain of this.drainers) drain()
    const start = performance.now()
    const deadline = start + timeoutMs
    const quietBy = start + Math.min(timeoutMs, 5 * quietMs)
    let quietSince = start
    while (server && performance.now() < quietBy) {
      if (server.pendingRequests > 0) quietSince = performance.now()
      else if (performance.now() - quietSince >= quietMs) break
      await Bun.sleep(10)
    }
    if (server) {
      // A graceful stop waits for the requests in flight; only the deadline cuts them off.
      const stopped = server.stop(false).then(() => true)
      const timedOut = Bun.sleep(Math.max(0, deadline - performance.now())).then(() => false)
      if (!(await Promise.race([stopped, timedOut]))) {
        log.warn({ pending: server.pendingRequests }, 'shutdown timeout: stopping with requests in flight')
        await server.stop(true)
      }
    }
    for (const close of this.closers.reverse()) {
      try {
        await close()
      } catch (error) {
        log.error({ err: error }, 'error during shutdown')
      }
    }
  }
}
