// What the router knows, read once at start: which methods a path answers to (405 with
// `Allow` instead of a 404), which field a schema belongs to, and what each route declared
// for the platform (route-options.ts): its rate-limit group and its body limit, and the scope
// its `auth` macro requires.
import type { RateGroup } from '../config'
import type { Requirement } from './keys'
import { MAX_ROUTE_BODY_LIMIT, type RouteOptions } from './route-options'

interface RouteLike {
  method: string
  path: string
  hooks?: { query?: unknown; params?: unknown; headers?: unknown; authScope?: Requirement } & RouteOptions
}

/** What a route declared that the body parser needs: its body limit, the 415's hint, the scope it requires. */
export interface Declared {
  bodyLimit?: number
  notJsonHint?: string
  /** Read by Bun's parser (route-options.ts `nativeJson`). */
  nativeJson?: boolean
  scope?: Requirement
}

const NOTHING_DECLARED: Declared = Object.freeze({})

interface ObjectSchema {
  properties?: Record<string, { error?: unknown }>
}

export class RouteTable {
  private patterns: Array<{ regex: RegExp; methods: Set<string> }> = []
  private schemas = new Map<string, Array<[location: string, schema: ObjectSchema]>>()
  /** What each `METHOD path` declared for its body and credentials: one lookup per request with a body. */
  private declared = new Map<string, Declared>()
  /** Rate groups of routes without parameters, by path, and of the others by their path up to the first parameter. */
  private groupsByPath = new Map<string, RateGroup>()
  private groupsByPrefix: Array<[prefix: string, group: RateGroup]> = []

  load(routes: readonly RouteLike[]): void {
    const byPath = new Map<string, Set<string>>()
    const prefixes = new Map<string, RateGroup>()
    for (const { method, path, hooks } of routes) {
      // Catch-alls (CORS preflight) would make every unknown path a 405.
      if (path.includes('*')) continue
      const verb = method.toUpperCase()
      if (hooks?.bodyLimit !== undefined && hooks.bodyLimit > MAX_ROUTE_BODY_LIMIT) {
        throw new Error(`${verb} ${path} declares a body limit past MAX_ROUTE_BODY_LIMIT (${MAX_ROUTE_BODY_LIMIT} bytes)`)
      }
      if (hooks?.bodyLimit !== undefined || hooks?.notJsonHint !== undefined || hooks?.nativeJson !== undefined || hooks?.authScope !== undefined) {
        this.declared.set(`${verb} ${path}`, { bodyLimit: hooks.bodyLimit, notJsonHint: hooks.notJsonHint, nativeJson: hooks.nativeJson, scope: hooks.authScope })
      }
      if (hooks?.rateGroup !== undefined) {
        const param = path.indexOf(':')
        if (param === -1) this.groupsByPath.set(path, hooks.rateGroup)
        else {
          const prefix = path.slice(0, param)
          const other = prefixes.get(prefix)
          // Before routing only the prefix is known, so routes sharing one must share the group.
          if (other !== undefined && other !== hooks.rateGroup) {
            throw new Error(`routes under ${prefix} declare the rate groups ${other} and ${hooks.rateGroup}; use one`)
          }
          prefixes.set(prefix, hooks.rateGroup)
        }
      }
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
    // Longest first, so the most specific route's declaration wins.
    this.groupsByPrefix = [...prefixes].sort(([a], [b]) => b.length - a.length)
  }

  /** What `method route` declared for its body (limit, the 415's hint) and the scope it requires; each absent when not declared. */
  declaredOf(method: string, route: string): Declared {
    return this.declared.get(`${method} ${route}`) ?? NOTHING_DECLARED
  }

  /**
   * The rate group of a request path, before routing: the group of the route without parameters
   * at that path, else of the routes whose path up to their first parameter it starts with.
   */
  rateGroupOf(path: string): RateGroup | undefined {
    const exact = this.groupsByPath.get(path)
    if (exact !== undefined) return exact
    for (const [prefix, group] of this.groupsByPrefix) if (path.startsWith(prefix)) return group
    return undefined
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
