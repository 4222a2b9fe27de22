// How the service listens: Bun.serve's options, production always.
import type { Config } from '../config'
import { MAX_ROUTE_BODY_LIMIT } from './route-options'
import { problem } from './errors'
import type { Logger } from './logger'

export function serveOptions(config: Config, log: Logger) {
  return {
    port: config.port,
    hostname: config.host,
    reusePort: config.workers > 1,
    // The parser enforces per-route limits with a problem+json 413; this only caps what Bun buffers.
    maxRequestBodySize: Math.max(config.bodyLimit, MAX_ROUTE_BODY_LIMIT),
    // Bun's development error page shows stacks, file paths and source. Should anything escape
    // the app's own error handler, the answer is a bare problem+json 500.
    development: false,
    error(error: Error) {
      log.error({ err: error }, 'unhandled error outside the app')
      return new Response(JSON.stringify(problem(500, 'the server failed to handle the request')), {
        status: 500,
        headers: { 'content-type': 'application/problem+json' },
      })
    },
  }
}
