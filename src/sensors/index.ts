// Routes of /v1/sensors (HTTP and the WebSocket at /v1/sensors/ws) and the public
// /dashboard: thin handlers over the hub, the ticket store and the socket protocol.
import { Elysia, t } from 'elysia'
import { auth, KEY_CACHE_MS, type Credentials } from '../platform/auth'
import { HttpError, problemResponses } from '../platform/errors'
import type { Principal } from '../platform/keys'
import type { Telemetry } from '../platform/observability'
import { routeOptions } from '../platform/route-options'
import { dashboard } from './dashboard'
import type { SensorHub } from './hub'
import { MAX_DATA_BYTES, SensorModel, topicOf } from './model'
import { sensorMetrics, type SensorFeed } from './setup'
import { defaultSocketLimits, MAX_SOCKETS_PER_KEY, type Connection } from './socket'
import type { TicketStore } from './tickets'
import { socketAdapter } from './upgrade'

export { SensorHub } from './hub'
export { sensorFeed, socketLimitsFor, type SensorFeed, type SensorFeedOptions } from './setup'
export { startSimulator } from './simulator'
export { MemoryTicketStore, type TicketStore } from './tickets'

/** Largest message a client may send on the socket; a bigger one closes it with 1009. */
export const MAX_MESSAGE_BYTES = 64 * 1024

/**
 * Bun's WebSocket settings for the server (they are per server, not per route):
 * Elysia reads them from the root app's `websocket` config.
 */
export function websocketSettings(hub: SensorHub) {
  return {
    maxPayloadLength: MAX_MESSAGE_BYTES,
    backpressureLimit: hub.backpressureLimit,
    // Bun's own close on the limit drops the connection without a close frame (the client sees 1006);
    // the hub closes slow consumers itself, with 1013, after everything already queued.
    closeOnBackpressureLimit: false,
    idleTimeout: 60,
    sendPings: true,
    // Readings are small JSON; compressing each for every subscriber costs more than it saves.
    perMessageDeflate: false,
  }
}

export interface SensorDeps {
  feed: SensorFeed
  credentials: Credentials
  /** Where the feed's gauges and totals are registered. */
  telemetry: Telemetry
  /** False while the service drains: new sockets are refused with 503. */
  accepting?: () => boolean
  /** Browser origins allowed to open the socket besides the service's own (CORS_ORIGINS). */
  origins?: readonly string[]
}

const realm = 'Bearer realm="taskmesh"'

/** A credential past its expiry (a token within its verification leeway) mints no ticket and opens no socket. */
function unexpired(principal: Principal): Principal {
  if (principal.expiresAt == null || principal.expiresAt > Date.now()) return principal
  throw new HttpError(401, `the ${principal.kind === 'token' ? 'access token' : 'API key'} has expired`, {
    headers: { 'www-authenticate': `${realm}, error="invalid_token"` },
  })
}

/**
 * A browser's handshake has both; without them Bun cannot upgrade, so nothing may be spent on the
 * request (a ticket, a socket slot) before they are checked.
 */
function checkHandshake(request: Request): void {
  if (request.headers.get('sec-websocket-key') && request.headers.get('sec-websocket-version') === '13') return
  throw new HttpError(400, 'a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13')
}

/**
 * The principal of an upgrade: a one-use `?ticket=` of a credential still standing, else the key
 * headers; sensors:read either way. A ticket is spent only once the Origin check passed.
 */
async function socketPrincipal(credentials: Credentials, tickets: TicketStore, request: Request, ticket: string | undefined, origins: readonly string[]): Promise<Principal> {
  if (ticket === undefined) {
    const principal = unexpired(await credentials.authenticate(request, 'sensors:read'))
    checkOrigin(request, origins)
    return principal
  }
  checkOrigin(request, origins)
  const principal = await tickets.redeem(ticket)
  if (!principal || !(await credentials.isLive(principal))) {
    throw new HttpError(401, 'the ticket is unknown, expired or already used, or its API key was revoked; get a new one with POST /v1/sensors/tickets', {
      headers: { 'www-authenticate': `${realm}, error="invalid_token"` },
    })
  }
  return unexpired(principal)
}

/** A browser page of another origin may not open the socket with a key it got hold of (cross-site WebSocket hijacking). */
function checkOrigin(request: Request, origins: readonly string[]): void {
  const origin = request.headers.get('origin')
  if (origin === null || origins.includes(origin)) return
  let host: string | null = null
  try {
    host = new URL(origin).host
  } catch {
    // not a URL: refused below
  }
  if (host !== null && host === request.headers.get('host')) return
  throw new HttpError(403, `WebSocket connections from the origin ${origin.slice(0, 100)} are not allowed`)
}

export function sensors({ feed, credentials, telemetry, accepting = () => true, origins = [] }: SensorDeps) {
  const { hub, tickets, sockets } = feed
  sensorMetrics(telemetry, feed)
  // Within the key cache's window, as for requests: a revoked key's sockets close about as soon as its requests fail.
  sockets.checkKeys((principal) => credentials.isLive(principal), KEY_CACHE_MS / 2)
  const socketProblems = problemResponses(400, 401, 403, 422, 426, 429, 500, 503)
  // socketAdapter: an open socket keeps only its Connection as its data (upgrade.ts).
  const api = new Elysia({ name: 'sensors/api', prefix: '/v1/sensors', tags: ['sensors'], adapter: socketAdapter })
    .use(auth(credentials))
    .use(routeOptions)
    .macro({
      socketAuth: (enabled: boolean) => ({
        // resolve runs once per upgrade (a WS route's beforeHandle runs twice, which would spend the ticket).
        async resolve({ request, query, server }) {
          if (!enabled) return { socketData: null as Connection | null }
          if (!accepting() || !hub.accepting) throw new HttpError(503, 'the server is shutting down; reconnect shortly', { headers: { 'retry-after': '1' } })
          checkHandshake(request)
          const principal = await socketPrincipal(credentials, tickets, request, (query as { ticket?: string }).ticket, origins)
          const slot = await sockets.reserve(principal)
          if (slot === null) throw new HttpError(429, `this API key already holds ${MAX_SOCKETS_PER_KEY} sockets open; close one first`)
          hub.attach(server)
          return { socketData: sockets.connection(principal, slot) as Connection | null }
        },
      }),
    })
    .get('', async () => ({ items: await hub.list() }), {
      auth: 'sensors:read',
      rateGroup: 'sensors',
      response: { 200: SensorModel.list, ...problemResponses(401, 403, 500) },
      detail: {
        summary: 'List the sensors',
        description: 'Every sensor with a reading in the history kept, with its newest reading, by sensor_id. At most 1000 topics are kept '
          + '(the least recently published is forgotten first, and one idle for 24 h); subscribing or reading creates none.',
      },
    })
    .post('/:sensor_id/readings', ({ params, body, set }) => {
      set.status = 202
      return hub.publish(topicOf(params.sensor_id), body)
    }, {
      auth: 'sensors:write',
      rateGroup: 'sensors',
      bodyLimit: MAX_DATA_BYTES,
      params: SensorModel.params,
      body: SensorModel.publishBody,
      parse: 'json',
      response: { 202: SensorModel.published, ...problemResponses(400, 401, 403, 413, 415, 422, 500) },
      detail: {
        summary: 'Publish a reading',
        description: 'Any JSON object of at most 16 KiB becomes the `data` of the next reading of `sensors/{sensor_id}`, '
          + 'delivered to every subscriber exactly as a socket publish is.',
      },
    })
    .get('/:sensor_id/readings', ({ params, query }) => hub.readings(topicOf(params.sensor_id), query.since ?? 0, query.limit ?? 100), {
      auth: 'sensors:read',
      rateGroup: 'sensors',
      params: SensorModel.params,
      query: SensorModel.readingsQuery,
      response: { 200: SensorModel.readings, ...problemResponses(401, 403, 422, 500) },
      detail: {
        summary: 'Readings of a sensor',
        description: 'The readings after `since` from the history kept (the last 1000 at least), oldest first. '
          + 'A topic nobody has published to is an empty list with a null epoch.',
      },
    })
    .post('/tickets', async ({ principal, set }) => {
      const { ticket, expiresAt } = await tickets.issue(unexpired(principal))
      set.status = 201
      set.headers['cache-control'] = 'no-store'
      return { ticket, expires_at: new Date(expiresAt).toISOString() }
    }, {
      auth: 'sensors:read',
      rateGroup: 'sensors',
      response: { 201: SensorModel.ticket, ...problemResponses(401, 403, 500) },
      detail: {
        summary: 'Get a WebSocket ticket',
        description: 'A one-use ticket, valid 30 s, that carries this key\'s scopes: open `GET /v1/sensors/ws?ticket=…` with it (browsers cannot set headers on a WebSocket).',
      },
    })
    // Without `Upgrade: websocket` the request lands here rather than on the socket route.
    .get('/ws', () => {
      throw new HttpError(426, 'GET /v1/sensors/ws opens a WebSocket: send Upgrade: websocket', { headers: { upgrade: 'websocket', connection: 'Upgrade' } })
    }, {
      rateGroup: 'sensors',
      query: SensorModel.socketQuery,
      response: { 101: t.Void({ description: 'Switching Protocols: the socket is open' }), ...socketProblems },
      detail: {
        summary: 'Open the sensor feed socket',
        description: 'A WebSocket upgrade. Auth by `X-API-Key` / `Authorization: Bearer` (scope sensors:read) or `?ticket=` from POST /v1/sensors/tickets; '
          + 'without it the upgrade is refused with 401 and no socket opens. Messages are JSON text frames. Client: '
          + '`{"op":"subscribe","topic":"sensors/t1","since":41,"epoch":"…"}` (since/epoch optional: replay the readings after since), '
          + '`{"op":"unsubscribe","topic"}`, `{"op":"publish","topic","data":{…}}` (scope sensors:write), `{"op":"ping"}`. '
          + 'Server: readings `{"topic","seq","ts","data"}` in seq order, once each across replay and live; `{"op":"subscribed","topic","epoch","recovered"}` '
          + '(sent before the replay; sent again with recovered false if the server had to drop the history of a subscribed topic); '
          + '`{"op":"error","code","message"}` for a bad message (the socket stays open); `{"op":"pong"}`. '
          + 'A connection may send as many messages as the sensors rate limit allows requests (RATE_LIMIT, 100/s with a burst of 200 by default): '
          + 'past that each message is answered with error rate_limited, and one that keeps sending a burst more is closed with 1008. '
          + 'Socket publishes draw from the same rate-limit bucket as the key\'s HTTP requests on /v1/sensors. '
          + `A connection may follow ${defaultSocketLimits.maxSubscriptions} topics; a key may hold ${MAX_SOCKETS_PER_KEY} sockets open (the next upgrade is 429); `
          + 'a socket whose key is revoked is closed with 1008 within 2 s. A message over 64 KiB closes with 1009, a client that cannot keep up with 1013, shutdown with 1001.',
        security: [{ apiKey: [] }, { bearer: [] }, {}],
      },
    })
    .ws('/ws', {
      socketAuth: true,
      query: SensorModel.socketQuery,
      // Types for Eden only: the hub checks every message itself and answers errors in-band.
      body: t.Unsafe<SensorModel.ClientMessage>(t.Unknown()),
      response: t.Unsafe<SensorModel.ServerMessage>(t.Unknown()),
      // No open/message/close here: the socket's Connection takes its events (upgrade.ts, socket.ts).
      // OpenAPI cannot describe a WebSocket; GET /v1/sensors/ws above documents the upgrade and the protocol.
      detail: {
        summary: 'The sensor feed socket (see GET /v1/sensors/ws)',
        // Refusals (401, 403, 503) are the problems documented on GET /v1/sensors/ws.
        responses: { 101: { description: 'Switching Protocols' } },
      },
    })
  return new Elysia({ name: 'sensors' }).use(api).use(dashboard())
}
