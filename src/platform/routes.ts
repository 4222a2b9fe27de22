// Which methods a path answers to, so an unknown method gets 405 with `Allow`
// instead of the router's 404.
interface RouteLike {
  method: string
  path: string
}

export class RouteTable {
  private patterns: Array<{ regex: RegExp; methods: Set<string> }> = []

  load(routes: readonly RouteLike[]): void {
    const byPath = new Map<string, Set<string>>()
    for (const { method, path } of routes) {
      const methods = byPath.get(path) ?? new Set<string>()
      methods.add(method.toUpperCase())
      if (method.toUpperCase() === 'GET') methods.add('HEAD')
      byPath.set(path, methods)
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
}

function toRegex(path: string): RegExp {
  const source = path
    .split('/')
    .map((part) => {
      if (part === '*') return '.*'
      if (part.startsWith(':')) return '[^/]+'
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return new RegExp(`^${source}/?$`)
}
