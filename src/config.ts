// Every environment variable the service reads, parsed and validated once at start.
import { isIP } from 'node:net'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export const SERVICES = ['tasks', 'sensors', 'inference'] as const
export type Service = (typeof SERVICES)[number]

export const RATE_GROUPS = ['tasks', 'sensors', 'inference', 'keys'] as const
export type RateGroup = (typeof RATE_GROUPS)[number]

export interface RateLimit {
  rate: number
  burst: number
}

export interface Config {
  port: number
  host: string
  databaseUrl: string
  redisUrl: string | null
  /** Prefix of every Redis key and channel, so several deployments (or tests) can share one Redis. */
  redisPrefix: string
  modelsDir: string
  simulator: boolean
  logLevel: LogLevel
  rateLimit: RateLimit | null
  /** Per scope group overrides of `rateLimit` (RATE_LIMIT_TASKS, …); absent groups use it. */
  rateLimits: Partial<Record<RateGroup, RateLimit | null>>
  /** Browser origins allowed by CORS and on WebSocket upgrades; none by default. */
  corsOrigins: string[]
  /** Longest a graceful shutdown waits for requests in flight, in milliseconds. */
  shutdownTimeoutMs: number
  /** Processes sharing the port (reusePort); more than one needs REDIS_URL. */
  workers: number
  /** The features this instance serves (health, metrics and docs always). */
  services: ReadonlySet<Service>
  /** Set in the processes a WORKERS>1 primary starts: which one this is. */
  workerId: number | null
  /** Largest request body accepted, in bytes. */
  bodyLimit: number
  /** Proxies (addresses and CIDRs, IPv4 or IPv6) whose X-Forwarded-For names the client; none by default. */
  trustedProxies: string[]
  /** OIDC_ISSUER and its companions: JWT access tokens of that provider are accepted beside API keys; null when unset. */
  oidc: OidcConfig | null
}

export interface OidcConfig {
  /** `iss` must equal it; discovery is at `${issuer}/.well-known/openid-configuration`. */
  issuer: string
  /** `aud` must contain it. */
  audience: string
  /** The claim naming a token's owner. */
  ownerClaim: string
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Env = Record<string, string | undefined>

function pick(env: Env, name: string, fallback: string): string {
  const value = env[name]
  return value === undefined || value === '' ? fallback : value
}

function fail(name: string, value: string, expected: string): never {
  throw new ConfigError(`${name}=${JSON.stringify(value)} is invalid: expected ${expected}`)
}

function parsePort(env: Env): number {
  const raw = pick(env, 'PORT', '3000')
  const port = Number(raw)
  if (!/^\d+$/.test(raw) || port > 65535) fail('PORT', raw, 'an integer from 0 to 65535')
  return port
}

function parseDatabaseUrl(env: Env): string {
  const raw = pick(env, 'DATABASE_URL', 'sqlite:data/app.sqlite')
  if (/^sqlite:.+/.test(raw) || /^postgres(ql)?:\/\/.+/.test(raw)) return raw
  return fail('DATABASE_URL', raw, 'sqlite:PATH or postgres://…')
}

function parseRedisUrl(env: Env): string | null {
  const raw = env.REDIS_URL
  if (raw === undefined || raw === '') return null
  if (!/^rediss?:\/\/.+/.test(raw)) fail('REDIS_URL', raw, 'redis://… or rediss://…')
  return raw
}

function parseSwitch(env: Env, name: string, fallback: 'on' | 'off'): boolean {
  const raw = pick(env, name, fallback)
  if (raw === 'on') return true
  if (raw === 'off') return false
  return fail(name, raw, 'on or off')
}

function parseLogLevel(env: Env): LogLevel {
  const raw = pick(env, 'LOG_LEVEL', 'info')
  if (raw === 'debug' || raw === 'info' || raw === 'warn' || raw === 'error') return raw
  return fail('LOG_LEVEL', raw, 'debug, info, warn or error')
}

function parseRateLimit(name: string, raw: string): RateLimit | null {
  if (raw === 'off') return null
  const match = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(raw)
  const rate = Number(match?.[1])
  const burst = Number(match?.[2])
  if (!match || rate <= 0 || burst < 1) fail(name, raw, 'RATE/BURST (e.g. 100/200) or off')
  return { rate, burst }
}

function parseGroupLimits(env: Env): Config['rateLimits'] {
  const limits: Config['rateLimits'] = {}
  for (const group of RATE_GROUPS) {
    const name = `RATE_LIMIT_${group.toUpperCase()}`
    const raw = env[name]
    if (raw !== undefined && raw !== '') limits[group] = parseRateLimit(name, raw)
  }
  return limits
}

function parseOrigins(env: Env): string[] {
  const raw = pick(env, 'CORS_ORIGINS', '')
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean)
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) fail('CORS_ORIGINS', raw, 'a comma-separated list of origins like https://app.example.com')
  }
  return origins
}

function parseTimeout(env: Env): number {
  const raw = pick(env, 'SHUTDOWN_TIMEOUT', '10')
  const seconds = Number(raw)
  if (!/^\d+(\.\d+)?$/.test(raw) || seconds > 3600) fail('SHUTDOWN_TIMEOUT', raw, 'seconds from 0 to 3600')
  return seconds * 1000
}

function parseWorkers(env: Env): number {
  const raw = pick(env, 'WORKERS', '1')
  const workers = Number(raw)
  if (!/^\d+$/.test(raw) || workers < 1 || workers > 64) fail('WORKERS', raw, 'an integer from 1 to 64')
  return workers
}

function parseServices(env: Env): ReadonlySet<Service> {
  const raw = pick(env, 'SERVICES', SERVICES.join(','))
  const names = raw.split(',').map((name) => name.trim()).filter(Boolean)
  if (names.length === 0 || names.some((name) => !(SERVICES as readonly string[]).includes(name))) {
    fail('SERVICES', raw, `a comma-separated subset of ${SERVICES.join(',')}`)
  }
  return new Set(names as Service[])
}

function parseTrustedProxies(env: Env): string[] {
  const raw = pick(env, 'TRUSTED_PROXIES', '')
  const entries = raw.split(',').map((entry) => entry.trim()).filter(Boolean)
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/')
    const family = isIP(address)
    const bits = family === 4 ? 32 : 128
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits)
    if (family === 0 || !prefixOk || rest.length > 0) {
      fail('TRUSTED_PROXIES', raw, 'a comma-separated list of IP addresses or CIDRs like 10.0.0.0/8,::1')
    }
  }
  return entries
}

/** Whether a URL is https, or http to a loopback host (localhost, 127.0.0.0/8, ::1): where the provider's keys may come from. */
export function isSecureUrl(url: URL): boolean {
  if (url.protocol === 'https:') return true
  if (url.protocol !== 'http:') return false
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

function parseOidc(env: Env): OidcConfig | null {
  const issuer = pick(env, 'OIDC_ISSUER', '')
  const audience = pick(env, 'OIDC_AUDIENCE', '')
  const ownerClaim = pick(env, 'OIDC_OWNER_CLAIM', 'sub')
  if (!/^[A-Za-z_][\w.:-]{0,127}$/.test(ownerClaim)) fail('OIDC_OWNER_CLAIM', ownerClaim, 'a claim name such as sub or client_id')
  if (issuer === '') {
    if (audience !== '') throw new ConfigError('OIDC_AUDIENCE is set without OIDC_ISSUER: set both, or neither')
    return null
  }
  let url: URL | null = null
  try {
    url = new URL(issuer)
  } catch {
    // refused below
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.search !== '' || url.hash !== '') fail('OIDC_ISSUER', issuer, 'the provider\'s issuer URL, like https://login.example.com/realms/main')
  // Tokens are only as good as the keys that verify them: plain HTTP only to this machine.
  if (!isSecureUrl(url)) fail('OIDC_ISSUER', issuer, 'an https:// URL (http:// only for localhost, 127.0.0.0/8 or ::1)')
  if (audience === '') throw new ConfigError('OIDC_AUDIENCE is required with OIDC_ISSUER: the audience (aud) the provider puts in access tokens for this service')
  return { issuer, audience, ownerClaim }
}

export function loadConfig(env: Env): Config {
  return {
    port: parsePort(env),
    host: pick(env, 'HOST', '0.0.0.0'),
    databaseUrl: parseDatabaseUrl(env),
    redisUrl: parseRedisUrl(env),
    redisPrefix: pick(env, 'REDIS_PREFIX', 'taskmesh:'),
    modelsDir: pick(env, 'MODELS_DIR', 'models'),
    simulator: parseSwitch(env, 'SIMULATOR', 'on'),
    logLevel: parseLogLevel(env),
    rateLimit: parseRateLimit('RATE_LIMIT', pick(env, 'RATE_LIMIT', '100/200')),
    rateLimits: parseGroupLimits(env),
    corsOrigins: parseOrigins(env),
    shutdownTimeoutMs: parseTimeout(env),
    workers: parseWorkers(env),
    services: parseServices(env),
    workerId: env.TASKMESH_WORKER === undefined ? null : Number(env.TASKMESH_WORKER),
    bodyLimit: 1024 * 1024,
    trustedProxies: parseTrustedProxies(env),
    oidc: parseOidc(env),
  }
}
