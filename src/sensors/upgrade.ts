// The socket route's upgrade: Elysia's Bun adapter, except that a `.ws()` route hands Bun one small
// object as the socket's data. Elysia's own keeps the whole request context (the Request, its
// headers, the query) and six closures over it per socket, about 4 KiB each, for as long as it is open.
import type { ServerWebSocket } from 'bun'
import type { AnyElysia } from 'elysia'
import { BunAdapter } from 'elysia/adapter/bun'
import type { AnyWSLocalHook } from 'elysia/ws/types'
import { HttpError } from '../platform/errors'

/** What a socket keeps as its data: Elysia's server-wide websocket handlers call its methods for each event. */
export interface SocketData {
  /** The upgrade did not happen: whatever was set aside for the socket is given back. */
  abandon(): void
  open(ws: ServerWebSocket<SocketData>): void
  message(ws: ServerWebSocket<SocketData>, message: string | Buffer): void
  close(ws: ServerWebSocket<SocketData>, code: number, reason: string): void
}

interface UpgradeContext {
  server: Bun.Server<SocketData> | null
  request: Request
  set: { headers: Record<string, string> }
  socketData: SocketData
}

/**
 * An adapter whose `.ws()` routes upgrade with `socketData`, which the route's resolve puts on the
 * context; their open/message/close options are not used (the data's methods are). Every hook of the
 * route (auth, rate limit, request id, CORS, metrics) runs as on any route, and the headers they set
 * go out with the 101.
 */
export const socketAdapter: typeof BunAdapter = {
  ...BunAdapter,
  ws(app: AnyElysia, path: string, { open: _open, message: _message, close: _close, parse: _parse, body: _body, response: _response, ...hooks }: AnyWSLocalHook) {
    app.route('WS', path, (context) => {
      const { server, request, set, socketData } = context as unknown as UpgradeContext
      const headers = Object.keys(set.headers).length > 0 ? set.headers : undefined
      if (server?.upgrade(request, { headers, data: socketData })) return
      socketData.abandon()
      throw new HttpError(400, 'the WebSocket handshake could not be completed')
    }, hooks)
  },
}
