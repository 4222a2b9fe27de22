// OpenID Connect access tokens beside API keys, against a real provider (oidc-provider under node,
// test/oidc/provider.mjs): client-credentials tokens from its token endpoint, key rotation, an
// outage, and tokens forged every way the contract names.
import { afterAll, beforeAll, describe, expect, setSystemTime, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { exportSPKI, importJWK, SignJWT, type CryptoKey, type JWTPayload } from 'jose'
import { RedisClient } from 'bun'
import { createApp } from '../src/app'
import { Credentials } from '../src/platform/auth'
import { createLogger } from '../src/platform/logger'
import { TokenVerifier } from '../src/platform/oidc'
import { RedisTicketStore } from '../src/sensors/tickets'
import { eventually } from './eventually'
import { inProcess, needs, problemOf, testApp, uniqueOwner, type TestApp } from './helpers'
import { keysServer } from './oidc/keys-server'
import { keySet, startProvider, type KeySet, type RunningProvider, type SigningAlg } from './oidc/provider'
import { startServer } from './server'
import { TestSocket } from './sensors.helpers'

const AUDIENCE = 'https://taskmesh.test'
const secret = (id: string) => `${id}-secret-${'x'.repeat(32)}`
const clients = [
  { id: 'alice', secret: secret('alice'), scope: 'tasks:read tasks:write sensors:read predict', alg: 'RS256' as const },
  { id: 'reader-es', secret: secret('reader-es'), scope: 'tasks:read', alg: 'ES256' as const },
  { id: 'reader-ed', secret: secret('reader-ed'), scope: 'tasks:read', alg: 'EdDSA' as const },
  { id: 'reader-ps', secret: secret('reader-ps'), scope: 'tasks:read', alg: 'PS256' as const },
  { id: 'brief', secret: secret('brief'), scope: 'sensors:read', ttl: 3 },
  { id: 'elsewhere', secret: secret('elsewhere'), scope: 'tasks:read', audience: 'https://another-service.test' },
]

let provider: RunningProvider
let app: TestApp

beforeAll(async () => {
  provider = await startProvider({ audience: AUDIENCE, clients, keys: await keySet() })
  app = await testApp({ OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: AUDIENCE })
})

afterAll(async () => {
  await app?.[Symbol.asyncDispose]()
  await provider?.stop()
})

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const now = () => Math.floor(Date.now() / 1000)

/** A token signed with one of the provider's own keys (so only the claims or header are wrong). */
async function signed(keys: KeySet, claims: JWTPayload, { alg = 'ES256', typ = 'at+jwt', issuer = provider.issuer }: { alg?: SigningAlg; typ?: string; issuer?: string } = {}) {
  const key = keys.keys.find((k) => k.alg === alg)!
  const payload = { iss: issuer, aud: AUDIENCE, sub: 'alice', scope: 'tasks:read', iat: now(), exp: now() + 300, ...claims }
  // typ '' leaves the header without one.
  return new SignJWT(payload).setProtectedHeader({ alg, kid: key.kid, ...(typ ? { typ } : {}) }).sign(key.privateKey)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A token signed with one of `keys` but naming a kid the provider never had. */
async function madeUpKid(keys: KeySet, issuer: string, kid = `made-up-${crypto.randomUUID()}`) {
  const key = keys.keys.find((k) => k.alg === 'ES256')!
  return new SignJWT({ scope: 'tasks:read' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
    .setIssuer(issuer).setAudience(AUDIENCE).setSubject('alice').setExpirationTime(now() + 300).sign(key.privateKey)
}

/** A token whose signature does not verify: a fresh one each call (its claims differ). */
const forged = async () => {
  const [header, , signature] = (await signed(provider.keys, {})).split('.')
  return `${header}.${b64({ iss: provider.issuer, aud: AUDIENCE, sub: crypto.randomUUID(), scope: 'admin', exp: now() + 300 })}.${signature}`
}

async function expectInvalidToken(token: string, what: RegExp, request = app.request) {
  const response = await request('/v1/tasks', { headers: bearer(token) })
  expect(response.status).toBe(401)
  expect(response.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/)
  expect((await problemOf(response)).detail).toMatch(what)
}

describe('client-credentials tokens from the provider', () => {
  test('a token works beside keys, and owner alice is one namespace: her key\'s task is listed with her token', async () => {
    const key = await app.key('alice')
    const created = await app.request('/v1/tasks', { method: 'POST', key, json: { title: 'made with a key' } })
    expect(created.status).toBe(201)
    const { id } = (await created.json()) as { id: number }
    const token = await provider.token('alice', 'tasks:read tasks:write')
    const listed = await app.request('/v1/tasks', { headers: bearer(token) })
    expect(listed.status).toBe(200)
    expect(((await listed.json()) as { items: Array<{ id: number }> }).items.map((task) => task.id)).toContain(id)
    // And the other way round: what the token creates, her key reads.
    const made = await app.request('/v1/tasks', { method: 'POST', headers: bearer(token), json: { title: 'made with a token' } })
    expect(made.status).toBe(201)
    const other = (await made.json()) as { id: number }
    expect((await app.request(`/v1/tasks/${other.id}`, { key })).status).toBe(200)
  })

  test.each(['RS256', 'PS256', 'ES256', 'EdDSA'] as const)('a token signed with %s is accepted', async (alg) => {
    const client = { RS256: 'alice', PS256: 'reader-ps', ES256: 'reader-es', EdDSA: 'reader-ed' }[alg]
    const token = await provider.token(client, 'tasks:read')
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toMatchObject({ alg, typ: 'at+jwt' })
    expect((await app.request('/v1/tasks', { headers: bearer(token) })).status).toBe(200)
  })

  test('the scope claim gates routes like a key\'s scopes: tasks:read reads but may not write (403)', async () => {
    const token = await provider.token('reader-es', 'tasks:read')
    expect((await app.request('/v1/tasks', { headers: bearer(token) })).status).toBe(200)
    const refused = await app.request('/v1/tasks', { method: 'POST', headers: bearer(token), json: { title: 'x' } })
    expect(refused.status).toBe(403)
    expect((await problemOf(refused)).detail).toBe('the access token lacks the scope tasks:write')
    // A token without any scope of ours reads nothing.
    expect((await app.request('/v1/tasks', { headers: bearer(await provider.token('alice')) })).status).toBe(403)
  })

  test('scopes may come as the array scp; names that are not scopes of the service are ignored', async () => {
    const withScp = await signed(provider.keys, { scope: undefined, scp: ['tasks:write', 'tasks:read', 'calendar.read'] })
    expect((await app.request('/v1/tasks', { headers: bearer(withScp) })).status).toBe(200)
    const unknownOnly = await signed(provider.keys, { scope: 'tasks:reader openid admin:all' })
    expect((await app.request('/v1/tasks', { headers: bearer(unknownOnly) })).status).toBe(403)
  })

  test('the header typ may be at+jwt (RFC 9068), JWT, or absent; another type is refused', async () => {
    for (const typ of ['JWT', 'application/at+jwt', '']) {
      expect((await app.request('/v1/tasks', { headers: bearer(await signed(provider.keys, {}, { typ })) })).status).toBe(200)
    }
    await expectInvalidToken(await signed(provider.keys, {}, { typ: 'dpop+jwt' }), /type "dpop\+jwt"/)
  })

  test('OIDC_OWNER_CLAIM names the owner: client_id', async () => {
    await using other = await testApp({ OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: AUDIENCE, OIDC_OWNER_CLAIM: 'client_id' })
    const key = await other.key('reader-es', ['tasks:read', 'tasks:write'])
    const created = (await (await other.request('/v1/tasks', { method: 'POST', key, json: { title: 'x' } })).json()) as { id: number }
    const token = await signed(provider.keys, { client_id: 'reader-es' })
    // Its sub is alice, but the owner is its client_id.
    expect((await other.request(`/v1/tasks/${created.id}`, { headers: bearer(token) })).status).toBe(200)
    await expectInvalidToken(await signed(provider.keys, {}), /client_id claim \(the owner\)/, other.request)
  })
})

describe('rate limits of tokens', () => {
  test('a token draws from its owner\'s bucket, whichever of her tokens it is; another owner has his own', async () => {
    await using limited = await testApp({ OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: AUDIENCE, RATE_LIMIT: '1/3' })
    const first = await provider.token('reader-es', 'tasks:read')
    for (let i = 0; i < 3; i++) expect((await limited.request('/v1/tasks', { headers: bearer(first) })).status).toBe(200)
    const again = await limited.request('/v1/tasks', { headers: bearer(await signed(provider.keys, { sub: 'reader-es' })) })
    expect(again.status).toBe(429)
    expect(again.headers.get('retry-after')).not.toBeNull()
    expect((await limited.request('/v1/tasks', { headers: bearer(await provider.token('reader-ed', 'tasks:read')) })).status).toBe(200)
  })

  test('refused tokens pay from their client\'s bucket of unknown keys (401 with RateLimit, then 429), and cannot lock out a verified token', async () => {
    await using limited = await testApp({ OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: AUDIENCE, RATE_LIMIT: '1/2' })
    const good = await signed(provider.keys, { sub: uniqueOwner() })
    expect((await limited.request('/v1/tasks', { headers: bearer(good) })).status).toBe(200)
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) {
      const response = await limited.request('/v1/tasks', { headers: bearer(await forged()) })
      statuses.push(response.status)
      if (response.status === 401) expect(response.headers.get('ratelimit')).toStartWith('"default";r=')
      else expect(response.headers.get('retry-after')).not.toBeNull()
    }
    expect(statuses.slice(0, 2)).toEqual([401, 401])
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(16)
    // Verified before, it draws from its owner's bucket at once: the made-up tokens emptied another.
    expect((await limited.request('/v1/tasks', { headers: bearer(good) })).status).toBe(200)
  })

  test('at most 4 unverified tokens from one client are verified at once; the rest are 429 at once', async () => {
    await using slow = keysServer(provider.keys, { delayMs: 1500 })
    const tokens = await Promise.all(Array.from({ length: 10 }, () => signed(provider.keys, { sub: uniqueOwner() }, { issuer: slow.issuer })))
    // Its keys take 1.5 s to come: every token waits on them, verification under way.
    await using t = await testApp({ OIDC_ISSUER: slow.issuer, OIDC_AUDIENCE: AUDIENCE, RATE_LIMIT: '100/200' })
    const responses = await Promise.all(tokens.map((token) => t.request('/v1/tasks', { headers: bearer(token) })))
    const statuses = responses.map((response) => response.status)
    expect(statuses.filter((status) => status === 200).length).toBe(4)
    expect(statuses.filter((status) => status === 429).length).toBe(6)
    expect((await problemOf(responses.find((response) => response.status === 429)!)).detail).toMatch(/^at most 4 credentials from one client are checked at once/)
  })

  test('a refused token is answered from memory for 2 s: its unknown kid fetches the keys once, not on every try', async () => {
    const keys = await keySet()
    await using server = keysServer(keys)
    await using t = await testApp({ OIDC_ISSUER: server.issuer, OIDC_AUDIENCE: AUDIENCE })
    // A verifier that fetches the keys again on every unknown kid (no cooldown).
    const eager = appWith(t, 0)
    expect((await eager('/v1/tasks', { headers: bearer(await signed(keys, {}, { issuer: server.issuer })) })).status).toBe(200)
    await eventually(() => server.fetches >= 2, { what: 'both verifiers fetched the keys' })
    const before = server.fetches
    const token = await madeUpKid(keys, server.issuer)
    for (let i = 0; i < 5; i++) {
      const refused = await eager('/v1/tasks', { headers: bearer(token) })
      expect(refused.status).toBe(401)
      expect((await problemOf(refused)).detail).toMatch(/no signing key of the provider matches/)
    }
    expect(server.fetches).toBe(before + 1)
    // Another made-up kid is another token: it fetches.
    expect((await eager('/v1/tasks', { headers: bearer(await madeUpKid(keys, server.issuer)) })).status).toBe(401)
    expect(server.fetches).toBe(before + 2)
  })
})

describe('refused tokens: 401 with WWW-Authenticate Bearer error="invalid_token"', () => {
  test('a forged signature (claims changed after signing)', async () => {
    const [header, payload, signature] = (await provider.token('reader-es', 'tasks:read')).split('.')
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as JWTPayload
    await expectInvalidToken(`${header}.${b64({ ...claims, sub: 'mallory', scope: 'admin' })}.${signature}`, /signature does not verify/)
  })

  test('a token signed by a key that is not the provider\'s, under one of its kids', async () => {
    const impostor = await keySet()
    const kid = provider.keys.keys.find((k) => k.alg === 'ES256')!.kid
    const token = await new SignJWT({ scope: 'tasks:read' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
      .setIssuer(provider.issuer).setAudience(AUDIENCE).setSubject('alice').setExpirationTime(now() + 300)
      .sign(impostor.keys.find((k) => k.alg === 'ES256')!.privateKey)
    await expectInvalidToken(token, /signature does not verify/)
  })

  test('alg: none', async () => {
    const kid = provider.keys.keys[0]!.kid
    const claims = { iss: provider.issuer, aud: AUDIENCE, sub: 'alice', scope: 'tasks:read', exp: now() + 300 }
    await expectInvalidToken(`${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(claims)}.`, /algorithm is not one of/)
    await expectInvalidToken(`${b64({ alg: 'none' })}.${b64(claims)}.c2ln`, /algorithm is not one of/)
  })

  test('HS256 signed with the provider\'s public key as the secret', async () => {
    const rsa = provider.keys.keys.find((k) => k.alg === 'RS256')!
    const claims = { iss: provider.issuer, aud: AUDIENCE, sub: 'alice', scope: 'admin tasks:read', exp: now() + 300 }
    const pem = await exportSPKI(await importJWK(rsa.publicJwk, 'RS256') as CryptoKey)
    for (const secretKey of [pem, JSON.stringify(rsa.publicJwk)]) {
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: rsa.kid })}.${b64(claims)}`
      const mac = createHmac('sha256', secretKey).update(input).digest('base64url')
      await expectInvalidToken(`${input}.${mac}`, /algorithm is not one of/)
    }
  })

  test('a token for another audience', async () => {
    await expectInvalidToken(await provider.token('elsewhere', 'tasks:read'), /"aud"/)
  })

  test('a token of another issuer, signed with the provider\'s own key', async () => {
    await expectInvalidToken(await signed(provider.keys, {}, { issuer: 'https://evil.example' }), /"iss"/)
  })

  test('expired beyond the 30 s leeway is refused; within it, accepted', async () => {
    await expectInvalidToken(await signed(provider.keys, { exp: now() - 45 }), /expired/)
    expect((await app.request('/v1/tasks', { headers: bearer(await signed(provider.keys, { exp: now() - 15 })) })).status).toBe(200)
  })

  test('not yet valid (nbf) beyond the 30 s leeway is refused; within it, accepted', async () => {
    await expectInvalidToken(await signed(provider.keys, { nbf: now() + 120 }), /"nbf"/)
    expect((await app.request('/v1/tasks', { headers: bearer(await signed(provider.keys, { nbf: now() + 15 })) })).status).toBe(200)
  })

  test('a token without exp, or whose owner claim is not a string', async () => {
    await expectInvalidToken(await signed(provider.keys, { exp: undefined }), /"exp"/)
    await expectInvalidToken(await signed(provider.keys, { sub: 42 as unknown as string }), /sub claim \(the owner\)/)
  })

  test('a missing, empty or over-long owner claim, or one with a control character, is a 401 (the owner rule of keys)', async () => {
    for (const sub of [undefined, '', 'x'.repeat(256), 'carol\u0007']) {
      await expectInvalidToken(await signed(provider.keys, { sub }), /sub claim \(the owner\) is not a string of 1 to 255 characters, without control characters/)
    }
    expect((await app.request('/v1/tasks', { headers: bearer(await signed(provider.keys, { sub: 'auth0|carol' })) })).status).toBe(200)
  })

  test('an ID token (nonce or at_hash) typed JWT or untyped is refused; typed at+jwt it is an access token, and auth_time alone passes', async () => {
    const status = async (token: Promise<string>) => (await app.request('/v1/tasks', { headers: bearer(await token) })).status
    for (const typ of ['JWT', '']) {
      await expectInvalidToken(await signed(provider.keys, { nonce: 'n-1' }, { typ }), /carries nonce, so it is an ID token, not an access token/)
      await expectInvalidToken(await signed(provider.keys, { at_hash: 'aGFzaA' }, { typ }), /carries at_hash, so it is an ID token/)
      expect(await status(signed(provider.keys, { auth_time: now() - 60 }, { typ }))).toBe(200)
    }
    expect(await status(signed(provider.keys, { nonce: 'n-2' }, { typ: 'at+jwt' }))).toBe(200)
  })

  test('a token in X-API-Key is a malformed key: only Authorization: Bearer carries tokens', async () => {
    const token = await provider.token('reader-es', 'tasks:read')
    expect((await app.request('/v1/tasks', { headers: bearer(token) })).status).toBe(200)
    const refused = await app.request('/v1/tasks', { headers: { 'x-api-key': token } })
    expect(refused.status).toBe(401)
    expect((await problemOf(refused)).detail).toBe('the API key is invalid or revoked')
  })

  test('a token verified (and cached) is accepted within the 30 s leeway after its exp, and refused after it', async () => {
    const token = await signed(provider.keys, { sub: uniqueOwner(), exp: now() + 60 })
    const start = Date.now()
    try {
      expect((await app.request('/v1/tasks', { headers: bearer(token) })).status).toBe(200)
      setSystemTime(start + 80_000)
      expect((await app.request('/v1/tasks', { headers: bearer(token) })).status).toBe(200)
      setSystemTime(start + 95_000)
      await expectInvalidToken(token, /it has expired/)
    } finally {
      setSystemTime()
    }
  })

  test('garbage shaped like a JWT is a 401, never a 5xx', async () => {
    for (const token of ['a.b.c', `${b64({ alg: 'ES256' })}.bm90IGpzb24.c2ln`, `${b64('x')}.${b64([1])}.AAAA`]) {
      await expectInvalidToken(token, /^the access token is invalid: /)
    }
  })
})

/** An app over `shared`'s database whose verifier re-fetches keys on an unknown kid after `cooldownMs` (30 s by default). */
function appWith(shared: TestApp, cooldownMs?: number) {
  const credentials = new Credentials(shared.keys, { tokens: new TokenVerifier(shared.config.oidc!, cooldownMs === undefined ? {} : { cooldownMs }) })
  const built = createApp({ config: shared.config, database: shared.database, keys: shared.keys, log: createLogger('silent'), registry: shared.registry, credentials })
  return inProcess(built)
}

describe('the provider\'s keys: rotation and outages', () => {
  let own: RunningProvider
  let shared: TestApp

  beforeAll(async () => {
    own = await startProvider({ audience: AUDIENCE, clients, keys: await keySet() })
    shared = await testApp({ OIDC_ISSUER: own.issuer, OIDC_AUDIENCE: AUDIENCE })
  })
  afterAll(async () => {
    await shared?.[Symbol.asyncDispose]()
    await own?.stop()
  })

  test('a rotated key (a new kid) is fetched on first sight, but no sooner than the cooldown after the last fetch', async () => {
    const eager = appWith(shared, 0)
    const throttled = appWith(shared)
    const before = await own.token('reader-es', 'tasks:read')
    expect((await eager('/v1/tasks', { headers: bearer(before) })).status).toBe(200)
    expect((await throttled('/v1/tasks', { headers: bearer(before) })).status).toBe(200)
    await own.rotate(await keySet())
    const after = await own.token('reader-es', 'tasks:read')
    expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).not.toBe(JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid)
    expect((await eager('/v1/tasks', { headers: bearer(after) })).status).toBe(200)
    // Fetched under 30 s ago: the unknown kid does not make it fetch again.
    const refused = await throttled('/v1/tasks', { headers: bearer(after) })
    expect(refused.status).toBe(401)
    expect((await problemOf(refused)).detail).toMatch(/no signing key of the provider matches/)
  })

  test('with the provider down from the start: tokens 503 with Retry-After (also on /v2, in its own shape), keys still work; then tokens work once it answers', async () => {
    const token = await own.token('reader-es', 'tasks:read')
    const alice = await own.token('alice', 'predict')
    await own.stop()
    try {
      await using down = await testApp({ OIDC_ISSUER: own.issuer, OIDC_AUDIENCE: AUDIENCE })
      const refused = await down.request('/v1/tasks', { headers: bearer(token) })
      expect(refused.status).toBe(503)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect((await problemOf(refused)).detail).toMatch(/identity provider/)
      const kserve = await down.request('/v2/models/anything', { headers: bearer(alice) })
      expect(kserve.status).toBe(503)
      expect(kserve.headers.get('retry-after')).not.toBeNull()
      expect(kserve.headers.get('content-type')).toStartWith('application/json')
      expect(Object.keys((await kserve.json()) as object)).toEqual(['error'])
      expect((await down.request('/v1/tasks', { key: await down.key() })).status).toBe(200)
      await own.start()
      await eventually(async () => (await down.request('/v1/tasks', { headers: bearer(token) })).status === 200, { what: 'the token is accepted once the provider answers', timeoutMs: 10_000, intervalMs: 250 })
    } finally {
      if (own) await own.start().catch(() => {})
    }
  })

  test('keys fetched before an outage keep verifying tokens through it, however old (past jose\'s 10-minute default)', async () => {
    const up = await testApp({ OIDC_ISSUER: own.issuer, OIDC_AUDIENCE: AUDIENCE })
    const start = Date.now()
    try {
      expect((await up.request('/v1/tasks', { headers: bearer(await own.token('reader-es', 'tasks:read')) })).status).toBe(200)
      // Signed with the provider's EdDSA key, and lasting past the jump in time below.
      const unseen = await signed(own.keys, { exp: now() + 3600 }, { alg: 'EdDSA', issuer: own.issuer })
      await own.stop()
      setSystemTime(start + 11 * 60_000)
      expect((await up.request('/v1/tasks', { headers: bearer(unseen) })).status).toBe(200)
    } finally {
      setSystemTime()
      await up[Symbol.asyncDispose]()
      await own.start()
    }
  })

  test('with keys cached and the provider failing past the cooldown, a made-up kid fetches the keys once per 30 s: 401 meanwhile, known kids verify', async () => {
    const keys = await keySet()
    await using server = keysServer(keys)
    await using t = await testApp({ OIDC_ISSUER: server.issuer, OIDC_AUDIENCE: AUDIENCE })
    const known = () => signed(keys, { sub: uniqueOwner(), exp: now() + 3600 }, { issuer: server.issuer })
    const madeUp = async () => (await t.request('/v1/tasks', { headers: bearer(await madeUpKid(keys, server.issuer)) }))
    expect((await t.request('/v1/tasks', { headers: bearer(await known()) })).status).toBe(200)
    server.failing = true
    const start = Date.now()
    try {
      setSystemTime(start + 31_000)
      const before = server.fetches
      const failed = await madeUp()
      expect(failed.status).toBe(503)
      expect(failed.headers.get('retry-after')).toBe('30')
      expect(server.fetches).toBe(before + 1)
      for (let i = 0; i < 10; i++) {
        const refused = await madeUp()
        expect(refused.status).toBe(401)
        expect((await problemOf(refused)).detail).toMatch(/no signing key of the provider matches/)
      }
      expect(server.fetches).toBe(before + 1)
      expect((await t.request('/v1/tasks', { headers: bearer(await known()) })).status).toBe(200)
      setSystemTime(start + 62_000)
      expect((await madeUp()).status).toBe(503)
      expect((await madeUp()).status).toBe(401)
      expect(server.fetches).toBe(before + 2)
      // The provider answers again: the next window's made-up kid fetches, and is 401 (not among its keys).
      server.failing = false
      setSystemTime(start + 93_000)
      expect((await madeUp()).status).toBe(401)
      expect(server.fetches).toBe(before + 3)
    } finally {
      setSystemTime()
    }
  })

  test('a jwks_uri that is not https (nor loopback) is never fetched: tokens are 503 naming it', async () => {
    await using server = keysServer(provider.keys, { jwksUri: 'http://keys.example.test/jwks' })
    await using t = await testApp({ OIDC_ISSUER: server.issuer, OIDC_AUDIENCE: AUDIENCE })
    const token = await signed(provider.keys, {}, { issuer: server.issuer })
    // The first may wait on the discovery begun at start; the second comes once it has failed, and names the same reason.
    for (let i = 0; i < 2; i++) {
      const response = await t.request('/v1/tasks', { headers: bearer(token) })
      expect(response.status).toBe(503)
      expect((await problemOf(response)).detail).toMatch(/jwks_uri http:\/\/keys\.example\.test\/jwks is not https/)
    }
  })

  test('the service starts and serves while the provider is unreachable', async () => {
    await own.stop()
    try {
      await using server = await startServer({ DATABASE_URL: `sqlite:${shared.dir}/started.sqlite`, MODELS_DIR: shared.config.modelsDir, OIDC_ISSUER: own.issuer, OIDC_AUDIENCE: AUDIENCE })
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
      expect((await fetch(`${server.url}/v1/tasks`, { headers: bearer(await signed(own.keys, {})) })).status).toBe(503)
      // Logged once, with what to expect.
      await eventually(() => server.output().includes('identity provider unreachable'), { what: 'the outage is logged' })
      expect(server.output().split('identity provider unreachable').length).toBe(2)
    } finally {
      await own.start()
    }
  })
})

describe('the keys API with an access token', () => {
  test('a token with no scope of the service (only openid) is 403 on all three keys routes', async () => {
    const owner = uniqueOwner()
    const key = await app.key(owner, ['tasks:read'])
    const token = await signed(provider.keys, { sub: owner, scope: 'openid profile' })
    const calls = [
      app.request('/v1/keys', { method: 'POST', headers: bearer(token), json: {} }),
      app.request('/v1/keys', { headers: bearer(token) }),
      app.request(`/v1/keys/${key.split('_')[1]}`, { method: 'DELETE', headers: bearer(token) }),
    ]
    for (const response of await Promise.all(calls)) {
      expect(response.status).toBe(403)
      expect((await problemOf(response)).detail).toMatch(/none of the service's scopes/)
    }
    expect((await app.keys.byId(key.split('_')[1]!))?.revokedAt).toBeNull()
  })

  test('a key minted with a token takes its scopes from scope or scp (the service\'s only), and no others', async () => {
    const mint = async (claims: JWTPayload, json: unknown = {}) =>
      app.request('/v1/keys', { method: 'POST', headers: bearer(await signed(provider.keys, { sub: uniqueOwner(), ...claims })), json })
    const fromScope = await mint({ scope: 'tasks:read predict openid' })
    expect(fromScope.status).toBe(201)
    expect(((await fromScope.json()) as { scopes: string[] }).scopes).toEqual(['tasks:read', 'predict'])
    const fromScp = await mint({ scope: undefined, scp: ['sensors:read', 'calendar.read'] })
    expect(((await fromScp.json()) as { scopes: string[] }).scopes).toEqual(['sensors:read'])
    const wider = await mint({ scope: 'tasks:read' }, { scopes: ['tasks:read', 'tasks:write'] })
    expect(wider.status).toBe(403)
    expect((await problemOf(wider)).detail).toBe('a key cannot have scopes its creator lacks: tasks:write')
  })

  test('a key minted with a token expires in 90 days by default, and may not live longer (403 naming the cap)', async () => {
    const token = await signed(provider.keys, { sub: uniqueOwner() })
    const mint = (json: unknown) => app.request('/v1/keys', { method: 'POST', headers: bearer(token), json })
    const days = 90 * 86_400
    const byDefault = (await (await mint({})).json()) as { expires_at: string }
    expect(Math.abs(Date.parse(byDefault.expires_at) - (Date.now() + days * 1000))).toBeLessThan(60_000)
    const hour = (await (await mint({ expires_in: 3600 })).json()) as { expires_at: string }
    expect(Math.abs(Date.parse(hour.expires_at) - (Date.now() + 3_600_000))).toBeLessThan(60_000)
    expect((await mint({ expires_in: days })).status).toBe(201)
    const longer = await mint({ expires_in: days + 1 })
    expect(longer.status).toBe(403)
    expect((await problemOf(longer)).detail).toBe(`a key created with an access token lives at most 90 days (expires_in ${days})`)
  })
})

describe('sockets and tickets die with the token', () => {
  test('a socket opened with a short-lived token closes with 1008 when it expires', async () => {
    app.app.listen({ port: 0, hostname: '127.0.0.1' })
    try {
      const url = `ws://127.0.0.1:${app.app.server!.port}/v1/sensors/ws`
      const token = await provider.token('brief', 'sensors:read')
      const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000
      const socket = await TestSocket.open(url, bearer(token))
      socket.send({ op: 'ping' })
      expect(await socket.next()).toEqual({ op: 'pong' })
      const closed = await socket.closed
      expect(closed.code).toBe(1008)
      expect(closed.reason).toBe('the access token expired')
      expect(Date.now()).toBeGreaterThanOrEqual(exp - 50)
    } finally {
      await app.app.stop(true)
    }
  })

  test('a socket opened with a ticket a short-lived token minted closes with 1008 at the token\'s expiry, and its other ticket is refused after it', async () => {
    app.app.listen({ port: 0, hostname: '127.0.0.1' })
    try {
      const base = `127.0.0.1:${app.app.server!.port}`
      const token = await provider.token('brief', 'sensors:read')
      const mint = async () => ((await (await fetch(`http://${base}/v1/sensors/tickets`, { method: 'POST', headers: bearer(token) })).json()) as { ticket: string }).ticket
      const [first, second] = [await mint(), await mint()]
      const socket = await TestSocket.open(`ws://${base}/v1/sensors/ws?ticket=${first}`)
      expect(await socket.closed).toEqual({ code: 1008, reason: 'the access token expired' })
      const late = new TestSocket(`ws://${base}/v1/sensors/ws?ticket=${second}`)
      await expect(late.opened).rejects.toThrow()
      expect((await late.closed).code).not.toBe(1000)
    } finally {
      await app.app.stop(true)
    }
  })

  test('a token past its exp, though within the leeway, mints no ticket and opens no socket (401)', async () => {
    const token = await signed(provider.keys, { sub: uniqueOwner(), scope: 'sensors:read', exp: now() - 10 })
    expect((await app.request('/v1/sensors', { headers: bearer(token) })).status).toBe(200)
    const minted = await app.request('/v1/sensors/tickets', { method: 'POST', headers: bearer(token) })
    expect(minted.status).toBe(401)
    expect((await problemOf(minted)).detail).toBe('the access token has expired')
    app.app.listen({ port: 0, hostname: '127.0.0.1' })
    try {
      const upgrade = await fetch(`http://127.0.0.1:${app.app.server!.port}/v1/sensors/ws`, {
        headers: { ...bearer(token), upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
      })
      expect(upgrade.status).toBe(401)
    } finally {
      await app.app.stop(true)
    }
  })

  test('a ticket minted with a token expires no later than the token', async () => {
    const token = await provider.token('brief', 'sensors:read')
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000
    const minted = await app.request('/v1/sensors/tickets', { method: 'POST', headers: bearer(token) })
    expect(minted.status).toBe(201)
    const { expires_at } = (await minted.json()) as { expires_at: string }
    expect(Date.parse(expires_at)).toBeLessThanOrEqual(exp)
  })
})

describe.if(needs('redis'))('tickets shared through Redis', () => {
  test('carry the token\'s expiry and kind, and expire with the token', async () => {
    const redis = new RedisClient('redis://127.0.0.1:6379')
    try {
      const store = new RedisTicketStore(redis, `oidc-test:${process.pid}:`)
      const principal = { keyId: 'jwt:abc', owner: 'alice', scopes: new Set(['sensors:read']), expiresAt: Date.now() + 1500, kind: 'token' as const }
      const kept = await store.issue(principal)
      expect(kept.expiresAt).toBe(principal.expiresAt)
      expect(await store.redeem(kept.ticket)).toEqual(principal)
      const left = await store.issue(principal)
      await eventually(async () => (await redis.send('PTTL', [`oidc-test:${process.pid}:ticket:${left.ticket}`])) === -2, { what: 'the ticket expires with the token', intervalMs: 100 })
      expect(await store.redeem(left.ticket)).toBeNull()
    } finally {
      redis.close()
    }
  })
})

describe('the OpenAPI document with OIDC_ISSUER', () => {
  test('describes the provider\'s scheme beside the key schemes, and routes accept either', async () => {
    const document = (await (await app.request('/openapi.json')).json()) as {
      components: { securitySchemes: Record<string, Record<string, unknown>> }
      paths: Record<string, Record<string, { security?: unknown[] }>>
    }
    const schemes = document.components.securitySchemes
    expect(Object.keys(schemes).sort()).toEqual(['accessToken', 'apiKey', 'bearer', 'oidc'])
    expect(schemes.oidc).toMatchObject({ type: 'openIdConnect', openIdConnectUrl: `${provider.issuer}/.well-known/openid-configuration` })
    expect(schemes.accessToken).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    expect(document.paths['/v1/tasks']!.post!.security).toEqual([{ apiKey: [] }, { bearer: [] }, { accessToken: [] }, { oidc: ['tasks:write'] }])
  })

  test('every operation that takes the provider\'s tokens documents 503 with Retry-After, in the shape of its own 401', async () => {
    type Operation = { security?: Array<Record<string, unknown>>; responses: Record<string, { headers?: Record<string, unknown>; content?: unknown }> }
    const document = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, Operation>> }
    const operations = Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ name: `${method} ${path}`, operation })))
    const withTokens = operations.filter(({ operation }) => operation.security?.some((scheme) => 'accessToken' in scheme))
    expect(withTokens.map(({ name }) => name)).toEqual(expect.arrayContaining(['post /v1/tasks', 'post /v1/keys', 'get /v2/models/{name}']))
    for (const { name, operation } of withTokens) {
      const unavailable = operation.responses['503']
      expect(unavailable, name).toBeDefined()
      expect(Object.keys(unavailable!.headers ?? {}), name).toContain('Retry-After')
      expect(unavailable!.content, name).toEqual(operation.responses['401']!.content)
    }
    expect(Object.keys(document.paths['/v2/models/{name}']!.get!.responses['503']!.content as object)).toEqual(['application/json'])
    // Without OIDC_ISSUER there is no provider to be down.
    await using plain = await testApp()
    const without = (await (await plain.request('/openapi.json')).json()) as { paths: Record<string, Record<string, Operation>> }
    expect(without.paths['/v1/tasks']!.post!.responses['503']).toBeUndefined()
  })
})
