// The lean lane: the hottest reads (a GET route that declares `lean: true`) answered from Bun's own
// route table, past Elysia's per-request lifecycle. The platform's steps run inline, in Elysia's
// order — request id, security headers, the rate gate, credentials, the route's own handler, its
// response, then tallies and the access line — with no context object, hook chain or after-response
// task per request. Elysia still owns each such route: its schema (OpenAPI, Eden), in-process
// `app.handle`, and every request the lane does not take (while draining, with an Origin when CORS
// is configured, an overlong URL, parameters its schema refuses), which the lane hands to Elysia
// before it has done anything, so Elysia answers it from the start.
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { TSchema } from '@sinclair/typebox'
import type { Server } from 'bun'
import { chain, type Awaitable } from './awaitable'
import type { Credentials } from './auth'
import { pathOf, securityHeaders, urlTooLong, type RateGate } from './gateway'
import { requestIdOf, type ErrorResponses } from './http'
import type { Principal, Requirement } from './keys'
import type { Lifecycle } from './lifecycle'
import type { RequestRecorder } from './observability'

interface RouteLike {
  method: string
  path: string
  handler: unknown
  hooks?: { lean?: boolean; params?: TSchema; authScope?: Requirement }
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
}

/** What a lean route's handler is given: the parts of Elysia's context the lane provides, and no others. */
export interface LeanContext {
  params: Record<string, string>
  request: Request
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
    if (route.method !== 'GET' || typeof route.handler !== 'function') throw new Error(`${route.method} ${route.path}: only GET routes may declare lean`)
    lanes[route.path] = { ...lanes[route.path], GET: lane(app, route, route.handler as (context: LeanContext) => unknown, options) }
  }
  return lanes
}

function lane(app: AppLike, route: RouteLike, handler: (context: LeanContext) => unknown, options: LeanOptions): BunHandler {
  const { credentials, gate, recorder, errors, lifecycle, corsOrigins } = options
  const params = route.hooks?.params ? TypeCompiler.Compile(route.hooks.params) : null
  const scope = route.hooks?.authScope
  const cors = corsOrigins.length > 0
  return (request, server) => {
    if (!lifecycle.accepting || urlTooLong(request) || (cors && request.headers.has('origin')) || (params && !params.Check(request.params))) {
      return app.fetch(request)
    }
    const requestId = requestIdOf(request)
    const set: LeanContext['set'] = { status: 200, headers: { 'x-request-id': requestId } }
    recorder.begin(request)
    securityHeaders(set.headers)
    const path = pathOf(request.url)
    const done = (response: Response) => {
      recorder.finish(request, route.path, set.status, path, requestId)
      return response
    }
    const failed = (error: unknown) => done(errors.render('UNKNOWN', error, path, route.path, request, set))
    try {
      const answered: Awaitable<Response> = chain(gate?.decide(request, server, set.headers), () =>
        chain(scope ? credentials.authenticate(request, scope) : undefined, (principal: Principal | undefined) =>
          chain(handler({ params: request.params, request, principal, set, path, route: route.path }) as Awaitable<unknown>, (result) => toResponse(result, set))))
      return answered instanceof Promise ? answered.then(done, failed) : done(answered)
    } catch (error) {
      return failed(error)
    }
  }
}
