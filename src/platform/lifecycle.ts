// Process lifecycle: readiness while serving, then a graceful drain on SIGTERM.
import type { Server } from 'bun'
import type { Logger } from './logger'

export class Lifecycle {
  /** False once shutdown begins: /readyz answers 503 and responses close their connection. */
  accepting = true
  private readonly closers: Array<() => void | Promise<void>> = []

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
