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
   * moment, then stop listening and run the closers. Bounded by `timeoutMs`.
   */
  async shutdown(server: Server<unknown> | undefined | null, { timeoutMs, log, quietMs = 200 }: { timeoutMs: number; log: Logger; quietMs?: number }): Promise<void> {
    this.accepting = false
    for (const drain of this.drainers) drain()
    const deadline = performance.now() + timeoutMs
    let quietSince = performance.now()
    while (server && performance.now() < deadline) {
      if (server.pendingRequests > 0) quietSince = performance.now()
      else if (performance.now() - quietSince >= quietMs) break
      await Bun.sleep(10)
    }
    if (server && server.pendingRequests > 0) log.warn({ pending: server.pendingRequests }, 'shutdown timeout: stopping with requests in flight')
    await server?.stop(performance.now() >= deadline)
    for (const close of this.closers.reverse()) {
      try {
        await close()
      } catch (error) {
        log.error({ err: error }, 'error during shutdown')
      }
    }
  }
}
