// A bare OpenID provider for tests that need to see its traffic: a real HTTP server (Bun.serve on
// 127.0.0.1) serving a discovery document and the public keys of a KeySet, counting fetches of the
// keys, and able to fail them (an outage) or answer them slowly. Tokens are signed by the test with
// the KeySet's private keys; oidc-provider (provider.ts) is for tokens from a token endpoint.
import type { KeySet } from './provider'

export interface KeysServer {
  readonly issuer: string
  /** Requests for the key set so far (failed ones included). */
  readonly fetches: number
  /** While true the key set is answered 503. */
  failing: boolean
  [Symbol.asyncDispose](): Promise<void>
}

export interface KeysServerOptions {
  /** Milliseconds each key-set response waits. */
  delayMs?: number
  /** The jwks_uri the discovery document names (its own /jwks unless given). */
  jwksUri?: string
}

export function keysServer(keys: KeySet, { delayMs = 0, jwksUri }: KeysServerOptions = {}): KeysServer {
  let fetches = 0
  const state = { failing: false }
  const server: Bun.Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request): Promise<Response> {
      const { pathname } = new URL(request.url)
      if (pathname === '/.well-known/openid-configuration') return Response.json({ issuer, jwks_uri: jwksUri ?? `${issuer}/jwks` })
      if (pathname !== '/jwks') return new Response('not found', { status: 404 })
      fetches++
      if (delayMs > 0) await Bun.sleep(delayMs)
      if (state.failing) return new Response('unavailable', { status: 503 })
      return Response.json({ keys: keys.keys.filter((key) => key.alg !== 'PS256').map((key) => key.publicJwk) })
    },
  })
  const issuer: string = `http://127.0.0.1:${server.port}`
  return {
    issuer,
    get fetches() {
      return fetches
    },
    get failing() {
      return state.failing
    },
    set failing(value: boolean) {
      state.failing = value
    },
    async [Symbol.asyncDispose]() {
      await server.stop(true)
    },
  }
}
