// A tiny OpenID Connect issuer for the token scenario: a discovery document and a JWKS served by
// Bun.serve in the bench's own process (the service fetches them once), and RS256 access tokens
// it signs for the seeded owners, as a provider's client-credentials grant would hand out.
import { exportJWK, generateKeyPair, SignJWT } from 'jose'

export const BENCH_AUDIENCE = 'https://taskmesh.bench'
const SCOPE = 'tasks:read tasks:write sensors:read sensors:write predict'

export interface Issuer {
  /** OIDC_ISSUER and OIDC_AUDIENCE for the service. */
  env: Record<string, string>
  /** An access token whose `sub` is `owner`, valid for an hour. */
  sign(owner: string): Promise<string>
  stop(): void
}

export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256')
  const kid = `bench-${process.pid}`
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' }] }
  let issuer = ''
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    routes: {
      '/.well-known/openid-configuration': () => Response.json({ issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['RS256'] }),
      '/jwks': () => Response.json(jwks),
    },
    fetch: () => new Response('not found', { status: 404 }),
  })
  issuer = `http://127.0.0.1:${server.port}`
  return {
    env: { OIDC_ISSUER: issuer, OIDC_AUDIENCE: BENCH_AUDIENCE },
    sign: (owner) => new SignJWT({ scope: SCOPE, client_id: owner })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
      .setIssuer(issuer).setAudience(BENCH_AUDIENCE).setSubject(owner)
      .setIssuedAt().setExpirationTime('1h')
      .sign(privateKey),
    stop: () => void server.stop(true),
  }
}
