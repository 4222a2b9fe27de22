// What a route declares about itself for the platform, beside `auth`: its rate-limit group and
// its body limit (`{ auth: 'tasks:write', rateGroup: 'tasks', bodyLimit: 16 * 1024 }`). They are
// declarations, not hooks: the platform reads them from the route table once at start (see
// routes.ts), so the limiter and the body reader know a route's settings before anything of the
// request is read, and no feature path is ever named here.
import { Elysia } from 'elysia'
import type { RateGroup } from '../config'

/** The most a route's `bodyLimit` may be: what the server lets through to the body reader (serve.ts). */
export const MAX_ROUTE_BODY_LIMIT = 64 * 1024 * 1024

/** A macro that only declares: returning no hook keeps the value on the route's hooks, where RouteTable finds it. */
const declare = <T>() => (_value: T) => ({})

export const routeOptions = new Elysia({ name: 'platform/route-options' }).macro({
  /** The scope group whose rate limit (RATE_LIMIT_<GROUP>) applies to the route. */
  rateGroup: declare<RateGroup>(),
  /** Largest request body the route accepts, in bytes, instead of the service-wide limit. */
  bodyLimit: declare<number>(),
  /** Added to the 415 for a body that is not JSON (another media type, or binary such as a pickle): where to turn instead. */
  notJsonHint: declare<string>(),
  /**
   * The JSON body is read by Bun's own parser (body.ts `readJsonNative`): for bodies of numbers and
   * names, where it saves a copy and a decode per request; a body that does not parse is then a 400
   * in the parser's words, binary data included, and a string holding U+FFFD a 400.
   */
  nativeJson: declare<boolean>(),
  /** A hot GET or POST answered by the platform's lean lane (lean.ts) from Bun's route table when served over HTTP. */
  lean: declare<boolean>(),
})

export interface RouteOptions {
  rateGroup?: RateGroup
  bodyLimit?: number
  notJsonHint?: string
  nativeJson?: boolean
  lean?: boolean
}
