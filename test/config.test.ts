import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../src/config'

describe('configuration', () => {
  test('defaults follow the contract', () => {
    expect(loadConfig({})).toEqual({
      port: 3000, host: '0.0.0.0', databaseUrl: 'sqlite:data/app.sqlite', redisUrl: null, redisPrefix: 'taskmesh:', modelsDir: 'models',
      simulator: true, logLevel: 'info', rateLimit: { rate: 100, burst: 200 }, rateLimits: {}, corsOrigins: [],
      shutdownTimeoutMs: 10_000, workers: 1, workerId: null, services: new Set(['tasks', 'sensors', 'inference']), bodyLimit: 1024 * 1024, trustedProxies: [], oidc: null,
    })
  })

  test.each([
    ['PORT', 'eighty'], ['PORT', '70000'], ['DATABASE_URL', 'mysql://x'], ['REDIS_URL', 'localhost:6379'],
    ['SIMULATOR', 'yes'], ['LOG_LEVEL', 'verbose'], ['RATE_LIMIT', '100'], ['RATE_LIMIT', '0/10'],
    ['RATE_LIMIT_TASKS', 'fast'], ['CORS_ORIGINS', 'example.com'], ['SHUTDOWN_TIMEOUT', '-1'], ['WORKERS', '0'], ['WORKERS', 'many'], ['SERVICES', 'tasks,billing'], ['SERVICES', ','],
    ['TRUSTED_PROXIES', 'nginx'], ['TRUSTED_PROXIES', '10.0.0.0/33'], ['TRUSTED_PROXIES', '::1/129'], ['TRUSTED_PROXIES', '10.0.0.1/8/8'],
    ['TRUSTED_PROXIES', '10.0.0.0/'], ['TRUSTED_PROXIES', '127.0.0.1,10.0.0.0/x'],
  ])('%s=%s is refused naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError)
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}=`))
  })

  test('TRUSTED_PROXIES takes IPv4 and IPv6 addresses and CIDRs, comma-separated', () => {
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1,::1, fd00::/8' }).trustedProxies).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8'])
  })

  test('OIDC_ISSUER with OIDC_AUDIENCE accepts the provider\'s tokens; the owner is sub unless OIDC_OWNER_CLAIM says otherwise', () => {
    const env = { OIDC_ISSUER: 'https://login.example.com/realms/main', OIDC_AUDIENCE: 'taskmesh' }
    expect(loadConfig(env).oidc).toEqual({ issuer: 'https://login.example.com/realms/main', audience: 'taskmesh', ownerClaim: 'sub' })
    expect(loadConfig({ ...env, OIDC_OWNER_CLAIM: 'client_id' }).oidc?.ownerClaim).toBe('client_id')
    expect(loadConfig({ OIDC_OWNER_CLAIM: 'azp' }).oidc).toBeNull()
  })

  test('OIDC_ISSUER may be plain http only on a loopback host', () => {
    for (const issuer of ['http://localhost:8080', 'http://127.0.0.1:4000/realms/x', 'http://127.9.9.9', 'http://[::1]:9000']) {
      expect(loadConfig({ OIDC_ISSUER: issuer, OIDC_AUDIENCE: 'taskmesh' }).oidc?.issuer).toBe(issuer)
    }
  })

  test.each([
    [{ OIDC_ISSUER: 'https://login.example.com' }, /^OIDC_AUDIENCE is required with OIDC_ISSUER/],
    [{ OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_AUDIENCE is set without OIDC_ISSUER/],
    [{ OIDC_ISSUER: 'login.example.com', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER="login.example.com" is invalid/],
    [{ OIDC_ISSUER: 'ftp://login.example.com', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER=/],
    [{ OIDC_ISSUER: 'https://login.example.com?x=1', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER=/],
    [{ OIDC_ISSUER: 'https://login.example.com', OIDC_AUDIENCE: 'taskmesh', OIDC_OWNER_CLAIM: 'has space' }, /^OIDC_OWNER_CLAIM=/],
    [{ OIDC_ISSUER: 'http://login.example.com', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER="http:\/\/login.example.com" is invalid: expected an https:\/\/ URL/],
    [{ OIDC_ISSUER: 'http://10.0.0.5:8080', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER=.*https:\/\//],
    [{ OIDC_ISSUER: 'http://localhost.example.com', OIDC_AUDIENCE: 'taskmesh' }, /^OIDC_ISSUER=.*https:\/\//],
  ])('%p is refused naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError)
    expect(() => loadConfig(env)).toThrow(message)
  })

  test('OIDC_ISSUER without OIDC_AUDIENCE stops the process naming OIDC_AUDIENCE', async () => {
    const proc = Bun.spawn([process.execPath, 'src/index.ts'], {
      cwd: join(import.meta.dir, '..'),
      env: { ...process.env, OIDC_ISSUER: 'https://login.example.com', OIDC_AUDIENCE: '' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(2)
    expect(stderr.trim()).toStartWith('taskmesh: OIDC_AUDIENCE is required with OIDC_ISSUER')
  })

  test('a bad value stops the process with one line naming the variable', async () => {
    const proc = Bun.spawn([process.execPath, 'src/index.ts'], {
      cwd: join(import.meta.dir, '..'),
      env: { ...process.env, PORT: 'eighty' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(2)
    expect(stderr.trim().split('\n')).toEqual(['taskmesh: PORT="eighty" is invalid: expected an integer from 0 to 65535'])
  })
})
