// The lean lane: the hottest calls (a GET or POST route that declares `lean: true`) answered from
// Bun's own route table, past Elysia's per-request lifecycle. The platform's steps run inline, in
// Elysia's order — request id, security headers, the rate gate, credentials, the JSON body (read
// strictly and checked against the route's schema), the route's own handler, its response, then
// tallies and the access line — with no Elysia context, hook chain or after-response task per
// request, and no promise where the store and the credentials answer at once. Elysia still owns
// each such route: its schema (OpenAPI, Eden), in-process `app.handle`, and every request the lane
// does not take (while draining, with an Origin when CORS is configured, an overlong URL,
// parameters its schema refuses), which the lane hands to Elysia before it has done anything, so
// Elysia answers it from the start.
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { Server } from 'bun'
import { ParseError, ValidationError } from 'elysia'
import { hasProperty, hasTransform } from 'elysia/schema'
import type { Awaitable } from './awaitable'
import type { Credentials } from './auth'
import { pathOf, securityHeaders, urlTooLong, type RateGate } from './gateway'
import { parseJson } from './body'
import { bodyBytesOf, bodyOf, requestIdOf, type ErrorResponses } from './http'
import type { Principal, Requirement } from './keys'
import type { Lifecycle } from './lifecycle'
import type { RequestRecorder, RouteRecorder } from './observability'
import type { Declared, RouteTable } from './routes'

interface RouteLike {
  method: string
  path: string
  handler: unknown
  hooks?: { lean?: boolean; params?: TSchema; query?: TSchema; body?: TSchema }
}

interface AppLike {
  routes: readonly RouteLike[]
  fetch(request: Request): Response | Promise<Response>
}

export interface LeanOptions {
  credentials: Credentials
  gate: RateGate | null
  recorder: RequestRecorder
  errors: ErrorResponses
  lifecycle: Lifecycle
  corsOrigins: readonly string[]
  /** What each route declared for its body and credentials, as Elysia's own parse hook reads it. */
  routes: RouteTable
  /** The service-wide body limit, for a route that declares none. */
  bodyLimit: number
}

/** What a lean route's handler is given: the parts of Elysia's context the lane provides, and no others. */
export interface LeanContext {
  params: Record<string, string>
  /** The query as Elysia gives it (defaults applied, values converted; `{}` for a route that declares none): only for a query the lane reads exactly so. */
  query: Record<string, unknown>
  request: Request
  /** The JSON body as the route's schema accepted it (POST); undefined for a GET. */
  body: unknown
  principal: Principal | undefined
  set: { status: number; headers: Record<string, string | number | undefined> }
  path: string
  route: string
}

type RoutedRequest = Request & { params: Record<string, string> }
type BunHandler = (request: RoutedRequest, server: Server<unknown>) => Response | Promise<Response>

/** A handler's result as Elysia maps it: a Response as it is, nothing as an empty body, anything else as JSON. */
function toResponse(result: unknown, set: LeanContext['set']): Response {
  if (result instanceof Response) return result
  if (result === undefined || result === null) return new Response(null, set as ResponseInit)
  if (typeof result === 'string') return new Response(result, set as ResponseInit)
  return Response.json(result, set as ResponseInit)
}

/**
 * Bun routes (`serve.routes`) for the routes of `app` that declare `lean: true`, keyed by path and
 * method; Elysia merges them over its own at listen.
 */
export function leanRoutes(app: AppLike, options: LeanOptions): Record<string, Record<string, BunHandler>> {
  const lanes: Record<string, Record<string, BunHandler>> = {}
  for (const route of app.routes) {
    if (route.hooks?.lean !== true) continue
    if ((route.method !== 'GET' && route.method !== 'POST') || typeof route.handler !== 'function') {
      throw new Error(`${route.method} ${route.path}: only GET and POST routes may declare lean`)
    }
    lanes[route.path] = { ...lanes[route.path], [route.method]: lane(app, route, route.handler as (context: LeanContext) => unknown, options) }
  }
  return lanes
}

/** A schema whose accepted values Elysia would change before the handler (defaults, transforms): not for the lane, which passes values as they are. */
function alters(schema: TSchema): boolean {
  return hasProperty('default', schema) || hasTransform(schema)
}

const positiveLength = /^[1-9]\d{0,15}$/

/**
 * Whether a request has a body (`request.body` is not null), from its Content-Length when that
 * settles it: `request.body` makes a stream of the body, which then costs its reader a few percent.
 */
function hasBody(request: Request): boolean {
  const length = request.headers.get('content-length')
  return (length !== null && positiveLength.test(length)) || request.body !== null
}

/**
 * Reads a POST's body as Elysia's parse step does (`bodyOf`: the platform's strict JSON reader, or Bun's parser for a route that declares `nativeJson`),
 * checks it as its validation step does (a refused body is Elysia's own ValidationError), and goes
 * on with `next` in the same step as the parse.
 */
function bodyReader(route: RouteLike, declared: Declared, serviceLimit: number): (request: Request, next: (body: unknown) => Awaitable<Response>) => Awaitable<Response> {
  const schema = route.hooks?.body
  if (schema && alters(schema)) throw new Error(`${route.method} ${route.path}: a lean route's body schema may not set defaults or transforms`)
  const check = schema ? TypeCompiler.Compile(schema) : null
  const limit = declared.bodyLimit ?? serviceLimit
  const hint = declared.notJsonHint
  const checked = (value: unknown) => {
    if (check && !check.Check(value)) throw new ValidationError('body', check, value)
    return value
  }
  const unreadable = (error: unknown): never => {
    throw new ParseError(error as Error)
  }
  const parsed = (bytes: Uint8Array) => {
    try {
      return parseJson(bytes, limit, hint)
    } catch (error) {
      return unreadable(error)
    }
  }
  return (request, next) => {
    // Elysia's content type: the header without parameters, '' when absent or with no body at all.
    let contentType = hasBody(request) ? request.headers.get('content-type') ?? '' : ''
    const semi = contentType.indexOf(';')
    if (semi !== -1) contentType = contentType.substring(0, semi)
    if (declared.nativeJson) {
      const body = bodyOf(request, contentType, declared, serviceLimit)
      return body === null ? next(checked(null)) : body.then((value) => next(checked(value)), unreadable)
    }
    const read = bodyBytesOf(request, contentType, limit, hint)
    return read === null ? next(checked(null)) : read.then((bytes) => next(checked(parsed(bytes))), unreadable)
  }
}

// Query values the lane reads itself: unreserved characters only (nothing to percent-decode, no `+`),
// integers written plainly. Any other query goes to Elysia, whose parsing and coercion decide it.
const plainValue = /^[\w.~-]+$/
const plainInteger = /^(0|[1-9]\d{0,14})$/
type Convert = (raw: string) => unknown
const HAND_OFF = Symbol('hand off')

/** How the lane turns one query value into what Elysia's coercion makes of it; null for kinds it leaves to Elysia. */
function converterOf(schema: TSchema): Convert | null {
  const members = Array.isArray(schema.anyOf) ? (schema.anyOf as TSchema[]) : []
  // Elysia's t.Integer is a union of a numeric string (decoded) and an integer.
  if (schema.type === 'integer' || members.some((s) => s.type === 'integer')) return (raw) => (plainInteger.test(raw) ? Number(raw) : HAND_OFF)
  if (schema.type === 'boolean') return (raw) => (raw === 'true' ? true : raw === 'false' ? false : HAND_OFF)
  const strings = schema.type === 'string' || (members.length > 0 && members.every((s) => typeof s.const === 'string'))
  return strings ? (raw) => raw : null
}

/**
 * The query a GET route declares, read as Elysia reads it (its defaults, then its values as the
 * schema wants them: a number for an integer, which Elysia decodes from its numeric string), or null
 * for one the lane leaves to Elysia: a repeated, empty or encoded value, a name or kind it does not
 * read, or a query the schema refuses (Elysia's 422 then names the field).
 */
export function queryReader(schema: TSchema | undefined): ((url: string) => Record<string, unknown> | null) | null {
  if (!schema) return null
  const converters = new Map<string, Convert | null>(Object.entries(schema.properties as Record<string, TSchema>).map(([name, s]) => [name, converterOf(s)]))
  const defaults = Value.Default(schema, {}) as Record<string, unknown>
  const check = TypeCompiler.Compile(schema)
  return (url) => {
    const query: Record<string, unknown> = {}
    const mark = url.indexOf('?')
    if (mark !== -1 && mark < url.length - 1) {
      for (const pair of url.slice(mark + 1).split('&')) {
        const eq = pair.indexOf('=')
        const name = pair.slice(0, eq)
        const convert = eq > 0 ? converters.get(name) : undefined
        const raw = pair.slice(eq + 1)
        if (!convert || name in query || !plainValue.test(raw)) return null
        const value = convert(raw)
        if (value === HAND_OFF) return null
        query[name] = value
      }
    }
    for (const name in defaults) if (query[name] === undefined) query[name] = defaults[name]
    return check.Check(query) ? query : null
  }
}

/** What every request of one lean route uses, resolved at start. */
interface LaneParts {
  route: string
  handler: (context: LeanContext) => unknown
  readBody: ReturnType<typeof bodyReader> | null
  scope: Requirement | undefined
  credentials: Credentials
  errors: ErrorResponses
  recorder: RouteRecorder
}

/**
 * One request in the lane: its context and the steps after the rate gate, as methods, so that a
 * request whose store and credentials answer at once allocates no closure on its way through.
 */
class Exchange {
  constructor(private readonly lane: LaneParts, private readonly context: LeanContext, private readonly started: number, private readonly requestId: string) {}

  /** Credentials, then the body (POST), the handler and its response. */
  proceed(): Awaitable<Response> {
    const { scope, credentials } = this.lane
    const principal = scope ? credentials.check(this.context.request, scope) : undefined
    return principal instanceof Promise ? principal.then((found) => this.admitted(found)) : this.admitted(principal)
  }

  private admitted(principal: Principal | undefined): Awaitable<Response> {
    this.context.principal = principal
    const { readBody } = this.lane
    return readBody ? readBody(this.context.request, (body) => this.answer(body)) : this.answer(undefined)
  }

  private answer(body: unknown): Awaitable<Response> {
    const { context } = this
    context.body = body
    const result = this.lane.handler(context) as Awaitable<unknown>
    return result instanceof Promise ? result.then((value) => toResponse(value, context.set)) : toResponse(result, context.set)
  }

  /** Tallies and the access line, once the response is known. */
  done(response: Response): Response {
    const { context } = this
    this.lane.recorder.record(this.started, context.set.status, context.path, this.requestId, context.principal?.keyId)
    return response
  }

  failed(error: unknown): Response {
    const { context } = this
    return this.done(this.lane.errors.render(error instanceof ParseError ? 'PARSE' : 'UNKNOWN', error, context.path, context.route, context.request, context.set))
  }
}

function lane(app: AppLike, route: RouteLike, handler: (context: LeanContext) => unknown, options: LeanOptions): BunHandler {
  const { gate, lifecycle, corsOrigins } = options
  const params = route.hooks?.params ? TypeCompiler.Compile(route.hooks.params) : null
  const declared = options.routes.declaredOf(route.method, route.path)
  const readQuery = queryReader(route.hooks?.query)
  const noQuery: Record<string, unknown> = {}
  const cors = corsOrigins.length > 0
  const parts: LaneParts = {
    route: route.path, handler, scope: declared.scope, credentials: options.credentials, errors: options.errors,
    readBody: route.method === 'POST' ? bodyReader(route, declared, options.bodyLimit) : null,
    recorder: options.recorder.route(route.method, route.path),
  }
  return (request, server) => {
    if (!lifecycle.accepting || urlTooLong(request) || (cors && request.headers.has('origin')) || (params && !params.Check(request.params))) {
      return app.fetch(request)
    }
    const query = readQuery ? readQuery(request.url) : noQuery
    if (query === null) return app.fetch(request)
    const started = options.recorder.start()
    const requestId = requestIdOf(request)
    const set: LeanContext['set'] = { status: 200, headers: { 'x-request-id': requestId } }
    securityHeaders(set.headers)
    const context: LeanContext = { params: request.params, query, request, body: undefined, principal: undefined, set, path: pathOf(request.url), route: route.path }
    const exchange = new Exchange(parts, context, started, requestId)
    try {
      const gated = gate?.decide(request, server, set.headers)
      const answered = gated instanceof Promise ? gated.then(() => exchange.proceed()) : exchange.proceed()
      return answered instanceof Promise ? answered.then((response) => exchange.done(response), (error: unknown) => exchange.failed(error)) : exchange.done(answered)
    } catch (error) {
      return exchange.failed(error)
    }
  }
}
