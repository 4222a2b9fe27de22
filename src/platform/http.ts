// Cross-cutting HTTP behaviour: request ids, strict JSON bodies (read only once the route's
// credentials pass), and the one error handler that turns every failure into problem+json, or
// into the error shape of a protocol a feature speaks under its own prefix (an ErrorRenderer it hands in).
import { Elysia, ValidationError } from 'elysia'
import type { Credentials } from './auth'
import { parseJson, readJsonBytes, readJsonNative } from './body'
import { HttpError, isUnavailable, problem, type FieldError, type Problem } from './errors'
import type { Lifecycle } from './lifecycle'
import type { Logger } from './logger'
import type { Declared, RouteTable } from './routes'

const saneRequestId = /^[\w.:@/+=-]{1,128}$/
const bodyless = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS'])

/** How errors look under one path prefix whose protocol has its own error shape. */
export interface ErrorRenderer {
  /** Requests whose path is the prefix or starts with it followed by `/`. */
  prefix: string
  render(problem: Problem): { body: string; contentType: string }
}

interface HttpOptions {
  bodyLimit: number
  /** Error shapes other than problem+json, by path prefix. */
  renderers?: readonly ErrorRenderer[]
  lifecycle: Lifecycle
  routes: RouteTable
  log: Logger
  /** Checks the credentials of routes that need them before their body is read. */
  credentials?: Credentials
}

interface SchemaLike {
  error?: unknown
}

/** Field locations are one word each, as in `body.title`, `query.limit`, `header.if-match`. */
export const locationOf = (type: string) => (type === 'headers' ? 'header' : type)

function fieldErrors(error: ValidationError, locate: (schema: SchemaLike | undefined) => string | null): FieldError[] {
  const seen = new Set<string>()
  const errors: FieldError[] = []
  for (const issue of error.all) {
    const schema = ('schema' in issue ? issue.schema : undefined) as SchemaLike | undefined
    const path = 'path' in issue && typeof issue.path === 'string' ? issue.path : ''
    const field = error.type === 'property'
      ? locate(schema) ?? 'request'
      : [locationOf(error.type), ...path.split('/').filter(Boolean)].join('.')
    if (seen.has(field)) continue
    seen.add(field)
    // A schema's own `error` text reads better than TypeBox's generic one.
    const message = typeof schema?.error === 'string' ? schema.error : ('summary' in issue && issue.summary) || issue.message
    errors.push({ field, message: String(message) })
  }
  return errors
}

/** Status, extra headers and problem body for anything thrown while handling a request. */
function classify(code: string | number, error: unknown, path: string, route: string, method: string, routes: RouteTable) {
  // Elysia wraps whatever the body parser throws in a ParseError.
  const cause = code === 'PARSE' ? (error as Error).cause : error
  if (cause instanceof HttpError) return { body: cause.problem(), headers: cause.headers }
  if (error instanceof ValidationError) {
    const errors = fieldErrors(error, (schema) => routes.fieldOf(method, route, schema))
    const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ') || 'the request does not match the schema'
    return { body: problem(422, detail, errors), headers: {} }
  }
  if (code === 'NOT_FOUND') {
    const allowed = routes.allowed(path)
    if (allowed.length > 0 && !allowed.includes(method)) {
      return { body: problem(405, `${method} is not allowed on ${path}`), headers: { allow: allowed.join(', ') } }
    }
    return { body: problem(404, `no route matches ${method} ${path}`), headers: {} }
  }
  if (code === 'PARSE') return { body: problem(400, 'the request body could not be parsed'), headers: {} }
  if (isUnavailable(error)) return { body: problem(503, 'a dependency of the service is unavailable; retry shortly'), headers: { 'retry-after': '1' } }
  if (typeof code === 'number' && code >= 400 && code < 500) {
    const detail = typeof (error as { response?: unknown }).response === 'string'
      ? (error as { response: string }).response
      : 'the request was refused'
    return { body: problem(code, detail), headers: {} }
  }
  return null
}

type SetHeaders = Record<string, string | number | undefined>

const problemJson = (body: Problem) => ({ body: JSON.stringify(body), contentType: 'application/problem+json' })

function rendererFor(path: string, renderers: readonly ErrorRenderer[]): ErrorRenderer['render'] {
  for (const { prefix, render } of renderers) {
    if (path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47)) return render
  }
  return problemJson
}

function respond(problem: Problem, render: ErrorRenderer['render'], headers: Record<string, string>, already: SetHeaders): Response {
  const { body, contentType } = render(problem)
  const merged = new Headers()
  // Headers set before the failure (request id, rate limit, security) still apply.
  for (const [name, value] of Object.entries(already)) if (value !== undefined && name !== 'content-type') merged.set(name, String(value))
  for (const [name, value] of Object.entries(headers)) merged.set(name, value)
  merged.set('content-type', contentType)
  return new Response(body, { status: problem.status, headers: merged })
}

/** What `classify` makes of an error; null (a fault) if the error itself breaks it. */
function classifySafely(...args: Parameters<typeof classify>): ReturnType<typeof classify> {
  try {
    return classify(...args)
  } catch {
    return null
  }
}

/** The request's id: the caller's `X-Request-Id` when it is sane, else a fresh UUID. */
export function requestIdOf(request: Request): string {
  const given = request.headers.get('x-request-id')
  return given !== null && saneRequestId.test(given) ? given : crypto.randomUUID()
}

/**
 * The body of a request with a body, as the routes see it: null when it sends nothing at all (no
 * body to refuse: the route's schema decides), else its JSON, read strictly (body.ts), or by Bun's
 * parser where the route declares `nativeJson`. `contentType` is the header without parameters, '' when there is none.
 */
export function bodyOf(request: Request, contentType: string, declared: Declared, serviceLimit: number): Promise<unknown> | null {
  const limit = declared.bodyLimit ?? serviceLimit
  if (declared.nativeJson) return noBody(request, contentType) ? null : readJsonNative(request, contentType, limit, declared.notJsonHint)
  const bytes = bodyBytesOf(request, contentType, limit, declared.notJsonHint)
  return bytes && bytes.then((read) => parseJson(read, limit, declared.notJsonHint))
}

/** Nothing sent at all: no content type, and no body or an empty one. */
const noBody = (request: Request, contentType: string) => !contentType && (request.body === null || request.headers.get('content-length') === '0')

/** `bodyOf` in two steps, for a caller that parses in the step it goes on in: null, or the bytes for parseJson. */
export function bodyBytesOf(request: Request, contentType: string, limit: number, hint?: string): Promise<Uint8Array> | null {
  return noBody(request, contentType) ? null : readJsonBytes(request, contentType, limit, hint)
}

/** Turns anything thrown while handling a request into its response: problem+json, or a prefix's own shape. */
export class ErrorResponses {
  constructor(private readonly routes: RouteTable, private readonly log: Logger, private readonly renderers: readonly ErrorRenderer[] = []) {}

  /** The response for `error` (Elysia's `code` for it, or 'UNKNOWN'); `set.status` becomes its status, for the access log and metrics. */
  render(code: string | number, error: unknown, path: string, route: string, request: Request, set: { status?: unknown; headers: SetHeaders }): Response {
    const known = classifySafely(code, error, path, route, request.method, this.routes)
    if (known) {
      set.status = known.body.status
      return respond(known.body, rendererFor(path, this.renderers), known.headers, set.headers)
    }
    set.status = 500
    this.log.error({ err: error, requestId: set.headers['x-request-id'], method: request.method, path }, 'unhandled error')
    return respond(problem(500, 'the server failed to handle the request'), rendererFor(path, this.renderers), {}, set.headers)
  }
}

export function http({ bodyLimit, routes, log, lifecycle, credentials, renderers = [], errors = new ErrorResponses(routes, log, renderers) }: HttpOptions & { errors?: ErrorResponses }) {
  return new Elysia({ name: 'platform/http' })
    .error({ HttpError })
    .onRequest(({ request, set }) => {
      set.headers['x-request-id'] = requestIdOf(request)
      // While draining, each answered connection closes so clients reconnect elsewhere.
      if (!lifecycle.accepting) set.headers.connection = 'close'
    })
    .onParse({ as: 'global' }, ({ request, contentType, route }) => {
      if (bodyless.has(request.method)) return null
      const declared = routes.declaredOf(request.method, route)
      // A caller without valid credentials is refused before a byte of its body is read.
      const admitted = credentials && declared.scope ? credentials.authenticate(request, declared.scope) : null
      if (admitted instanceof Promise) return admitted.then(() => bodyOf(request, contentType, declared, bodyLimit))
      return bodyOf(request, contentType, declared, bodyLimit)
    })
    .onError({ as: 'global' }, ({ code, error, path, route, request, set }) => errors.render(code, error, path, route, request, set as { status?: unknown; headers: SetHeaders }))
}
