// A real OpenID Connect provider (oidc-provider, run by node) for the token tests and the bench:
// client-credentials clients whose access tokens are JWTs for one audience. The configuration is
// JSON in argv[2]: { port, audience, jwks: { keys: [private JWKs] }, clients: [{ id, secret, scope,
// alg?, ttl?, audience? }] }. Prints one line `{"issuer":"http://127.0.0.1:PORT"}` once it listens;
// rotating keys is a restart with another JWKS on the same port, an outage is stopping it.
import { createServer } from 'node:http'
import Provider from 'oidc-provider'

const { port = 0, audience, jwks, clients } = JSON.parse(process.argv[2])
const scopes = ['tasks:read', 'tasks:write', 'sensors:read', 'sensors:write', 'predict', 'admin']
const byClient = new Map(clients.map((client) => [client.id, client]))

const server = createServer()
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`
  const provider = new Provider(issuer, {
    jwks,
    scopes,
    clients: clients.map(({ id, secret, scope }) => ({
      client_id: id, client_secret: secret, scope, grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
    })),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        // Every client's tokens are JWTs for its audience (the service's by default), signed with its alg.
        getResourceServerInfo(_ctx, _resource, client) {
          const own = byClient.get(client.clientId) ?? {}
          return {
            scope: scopes.join(' '),
            audience: own.audience ?? audience,
            accessTokenTTL: own.ttl ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: own.alg ?? 'RS256' } },
          }
        },
      },
    },
  })
  server.on('request', provider.callback())
  process.stdout.write(`${JSON.stringify({ issuer })}\n`)
})

process.on('SIGTERM', () => server.close(() => process.exit(0)))
