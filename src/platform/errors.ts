// RFC 9457 problem details: the one shape every 4xx/5xx of the service takes.
import { Type } from '@sinclair/typebox'
import { t } from 'elysia'

export interface FieldError {
  /** JSON Pointer-ish location: `body.title`, `query.limit`, `header.if-match` (one location word each: body, query, params, header). */
  field: string
  message: string
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  errors?: FieldError[]
}

export const ProblemSchema = t.Object({
  type: t.String({ description: 'A URI naming the kind of problem' }),
  title: t.String(),
  status: Type.Integer(),
  detail: t.String(),
  errors: t.Optional(t.Array(t.Object({ field: t.String(), message: t.String() }))),
}, { title: 'Problem' })

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  426: 'Upgrade Required',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export interface HttpErrorOptions {
  /** Response headers that go with the problem (`WWW-Authenticate`, `Retry-After`, …). */
  headers?: Record<string, string>
  /** The fields at fault, for validation problems. */
  errors?: FieldError[]
  /** Extension members (RFC 9457 §3.2) added to the problem. */
  extensions?: Record<string, unknown>
}

/** An error a service throws to answer with a problem; never logged as a fault. */
export class HttpError extends Error {
  readonly headers: Record<string, string>
  readonly errors: FieldError[] | undefined
  readonly extensions: Record<string, unknown>

  constructor(readonly status: number, readonly detail: string, { headers = {}, errors, extensions = {} }: HttpErrorOptions = {}) {
    super(detail)
    this.headers = headers
    this.errors = errors
    this.extensions = extensions
  }

  problem(): Problem {
    return { ...problem(this.status, this.detail, this.errors), ...this.extensions }
  }
}

export function problem(status: number, detail: string, errors?: FieldError[]): Problem {
  const title = titles[status] ?? 'Error'
  // about:blank: the status code says it all, and the title is its reason phrase (RFC 9457 §4.2.1).
  const body: Problem = {
    type: 'about:blank',
    title,
    status,
    detail,
  }
  if (errors) body.errors = errors
  return body
}

export const invalid = (field: string, message: string) =>
  new HttpError(422, `${field}: ${message}`, { errors: [{ field, message }] })

/** Response schemas for the problem statuses a route can answer with, for OpenAPI and Eden. */
export function problemResponses<const C extends number>(...codes: C[]): Record<C, typeof ProblemSchema> {
  return errorResponses(ProblemSchema, ...codes)
}

/** The same error schema for each of `codes` (problem+json, or a protocol's own error shape). */
export function errorResponses<S, const C extends number>(schema: S, ...codes: C[]): Record<C, S> {
  return Object.fromEntries(codes.map((code) => [code, schema])) as Record<C, S>
}

// Bun's SQL and Redis clients name lost or refused connections with these codes.
const unavailableCodes = /^(ERR_POSTGRES_CONNECTION|ERR_POSTGRES_CONNECTION_\w+|ERR_REDIS_CONNECTION\w*|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE)$|CONNECTION_(CLOSED|REFUSED|TIMEOUT)/

/** True when a dependency (database, Redis) could not be reached, as opposed to a bug. */
export function isUnavailable(error: unknown): boolean {
  // drizzle wraps driver errors; the driver's code is on the cause.
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && unavailableCodes.test(code)) return true
  }
  return false
}
