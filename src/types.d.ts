declare module '*.sql' {
  const text: string
  export default text
}

// `import path from './x.wasm' with { type: 'file' }` yields the file's path (a /$bunfs/ path once compiled).
declare module '*.wasm' {
  const path: string
  export default path
}

declare module 'swagger-ui-dist/*' {
  const path: string
  export default path
}

declare module 'redoc/bundles/*' {
  const path: string
  export default path
}

// prom-client's parts, each its module.exports (see src/platform/observability.ts), typed as its index types them.
declare module 'prom-client/lib/counter' {
  import { Counter } from 'prom-client'
  export default Counter
}

declare module 'prom-client/lib/gauge' {
  import { Gauge } from 'prom-client'
  export default Gauge
}

declare module 'prom-client/lib/registry' {
  import { Registry } from 'prom-client'
  export default Registry
}

// One of collectDefaultMetrics' parts: registers its metrics on the registry.
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client'
  const register: (registry: Registry, config: { eventLoopMonitoringPrecision?: number }) => void
  export default register
}
