// What the router knows, kept for error handling: which methods a path answers
// to (405 with `Allow` instead of a 404), and which field a schema belongs to.
interface RouteLike {
  method: string
  path: string
  hooks?: { query?: unknown; params?: unknown; headers?: unknown }
}

interface ObjectSchema {
  properties?: Record<string, { error?: unknown }>
}

export class RouteTable {
  private patterns: Array<{ regex: RegExp; methods: Set<string> }> = []
  private schemas = new Map<string, Array<[location: string, schema: ObjectSchema]>>()

  load(routes: readonly RouteLike[]): void {
    const byPath = new Map<string, Set<string>>()
    for (const { method, path, hooks } of routes) {
      // Catch-alls (CORS preflight) would make every unknown path a 405.
      if (path.includes('*')) continue
      const verb = method.toUpperCase()
      const methods = byPath.get(path) ?? new Set<string>()
      methods.add(verb)
      if (verb === 'GET') methods.add('HEAD')
      byPath.set(path, methods)
      const located = (['params', 'query', 'headers'] as const)
        .filter((location) => hooks?.[location])
        .map((location) => [location === 'headers' ? 'header' : location, hooks![location] as ObjectSchema] as [string, ObjectSchema])
      this.schemas.set(`${verb} ${path}`, located)
    }
    this.patterns = [...byPath].map(([path, methods]) => ({ regex: toRegex(path), methods }))
  }

  /** The methods allowed on `path`, or an empty list when no route matches it. */
  allowed(path: string): string[] {
    const methods = new Set<string>()
    for (const pattern of this.patterns) {
      if (pattern.regex.test(path)) for (const method of pattern.methods) methods.add(method)
    }
    return [...methods].filter((m) => m !== 'ALL' && m !== 'WS').sort()
  }

  /**
   * Names the parameter a failing property schema belongs to (`query.limit`).
   * Elysia reports failed range checks of coerced params and queries without a path.
   */
  fieldOf(method: string, route: string, failing: { error?: unknown } | undefined): string | null {
    if (!failing) return null
    for (const [location, schema] of this.schemas.get(`${method === 'HEAD' ? 'GET' : method} ${route}`) ?? []) {
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        if (property === failing || (failing.error !== undefined && property.error === failing.error)) return `${location}.${name}`
      }
    }
    return null
  }
}

function toRegex(path: string): RegExp {
  const source = path
    .replace(/\/$/, '')
    .split('/')
    .map((part) => {
      if (part === '*') return '.*'
      if (part.startsWith(':')) return '[^/]+'
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return new RegExp(`^${source}/?$`)
}
