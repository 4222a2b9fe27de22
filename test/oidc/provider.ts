// Runs test/oidc/provider.mjs (oidc-provider under node) as a child process, with signing keys made
// here so tests can also sign tokens of their own with the provider's keys (expired, foreign, …).
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'

export type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA'

export interface SigningKey {
  kid: string
  alg: SigningAlg
  privateKey: CryptoKey
  /** The public JWK, as the provider's JWKS serves it. */
  publicJwk: JWK
}

export interface KeySet {
  keys: SigningKey[]
  /** The private JWKS handed to the provider. */
  jwks: { keys: JWK[] }
}

let generation = 0

/** An RSA key (RS256 and PS256), a P-256 key and an Ed25519 key, with fresh kids. */
export async function keySet(): Promise<KeySet> {
  const round = ++generation
  const made = await Promise.all((['RS256', 'ES256', 'EdDSA'] as const).map(async (alg) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) })
    const kid = `${alg.toLowerCase()}-${process.pid}-${round}`
    return { kid, alg, privateKey, privateJwk: { ...(await exportJWK(privateKey)), kid, use: 'sig' }, publicJwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' } }
  }))
  const keys: SigningKey[] = made.map(({ kid, alg, privateKey, publicJwk }) => ({ kid, alg, privateKey, publicJwk }))
  const rsa = keys[0]!
  keys.push({ ...rsa, alg: 'PS256' })
  return { keys, jwks: { keys: made.map((key) => key.privateJwk) } }
}

export interface ClientSpec {
  id: string
  secret: string
  /** The scopes the client may ask for, space-separated. */
  scope: string
  alg?: SigningAlg
  /** Access token lifetime in seconds (300 unless given). */
  ttl?: number
  /** The `aud` of its tokens, when not the provider's audience. */
  audience?: string
}

export interface ProviderOptions {
  audience: string
  clients: ClientSpec[]
  keys: KeySet
}

export interface RunningProvider {
  readonly issuer: string
  readonly keys: KeySet
  /** A client-credentials access token from the token endpoint. */
  token(clientId: string, scope?: string): Promise<string>
  /** Restarts the provider on the same port (the same issuer) with other signing keys. */
  rotate(keys: KeySet): Promise<void>
  /** Stops the provider (an outage); `start` brings it back on the same port. */
  stop(): Promise<void>
  start(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const script = join(import.meta.dir, 'provider.mjs')

async function spawn(options: ProviderOptions, port: number): Promise<{ proc: Subprocess<'ignore', 'pipe', 'pipe'>; issuer: string }> {
  const proc = Bun.spawn(['node', script, JSON.stringify({ port, audience: options.audience, jwks: options.keys.jwks, clients: options.clients })], {
    stdin: 'ignore', stdout: 'pipe', stderr: 'pipe',
  })
  // Its warnings are drained (a full pipe would stall it), keeping the last few for a failure's message.
  let errors = ''
  void (async () => {
    for await (const chunk of proc.stderr) errors = (errors + new TextDecoder().decode(chunk)).slice(-4000)
  })()
  let output = ''
  const decoder = new TextDecoder()
  for await (const chunk of proc.stdout) {
    output += decoder.decode(chunk, { stream: true })
    const line = /^\{"issuer":"[^"]+"\}$/m.exec(output)
    if (line) return { proc, issuer: (JSON.parse(line[0]) as { issuer: string }).issuer }
  }
  await proc.exited
  throw new Error(`the OpenID provider exited before listening: ${output}${errors}`)
}

/** Starts oidc-provider on a free port (node must be on PATH). */
export async function startProvider(options: ProviderOptions): Promise<RunningProvider> {
  let current = { ...options }
  let { proc, issuer } = await spawn(current, 0)
  const port = Number(new URL(issuer).port)
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await proc.exited
  }
  const start = async () => {
    ;({ proc } = await spawn(current, port))
  }
  return {
    issuer,
    get keys() {
      return current.keys
    },
    async token(clientId, scope) {
      const client = current.clients.find(({ id }) => id === clientId)!
      const body = new URLSearchParams({ grant_type: 'client_credentials', ...(scope === undefined ? {} : { scope }) })
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${btoa(`${client.id}:${client.secret}`)}`, 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
      const answer = (await response.json()) as { access_token?: string; error?: string; error_description?: string }
      if (!response.ok || !answer.access_token) throw new Error(`token endpoint: ${response.status} ${JSON.stringify(answer)}`)
      return answer.access_token
    },
    async rotate(keys) {
      await stop()
      current = { ...current, keys }
      await start()
    },
    stop,
    start,
    [Symbol.asyncDispose]: stop,
  }
}
