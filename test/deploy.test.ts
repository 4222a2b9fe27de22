// The deployment files cannot be applied here (no Docker engine, no cluster), so
// they are parsed and checked for what would break a rollout: dangling
// references, missing probes, and configuration the service itself would refuse.
// The nginx confs are also run, by Debian's nginx, in front of the real service.
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { loadConfig } from '../src/config'
import { BATCH_BODY_LIMIT, UPLOAD_BODY_LIMIT } from '../src/inference'
import { eventually } from './eventually'
import { copyModels, tempDir } from './helpers'
import { TestSocket } from './sensors.helpers'
import { cliKey, startServer } from './server'

const deploy = join(import.meta.dir, '..', 'deploy')

type Doc = { apiVersion: string; kind: string; metadata: { name: string }; [key: string]: unknown }
type Container = { image: string; env?: Array<{ name: string; value: string }>; envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>; livenessProbe?: { httpGet: { path: string } }; readinessProbe?: { httpGet: { path: string } }; ports: Array<{ name: string }>; volumeMounts?: Array<{ name: string }> }
type Deployment = Doc & { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: { containers: Container[]; volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } } } }

async function yamlDocs(file: string): Promise<unknown[]> {
  const parsed = Bun.YAML.parse(await Bun.file(file).text())
  return Array.isArray(parsed) ? parsed : [parsed]
}

/** Every document a kustomization renders, following `resources` into folders. */
async function kustomize(folder: string): Promise<Doc[]> {
  const [kustomization] = (await yamlDocs(join(folder, 'kustomization.yaml'))) as Array<{ resources: string[] }>
  const docs: Doc[] = []
  for (const resource of kustomization!.resources) {
    const path = join(folder, resource)
    expect(existsSync(path), `${folder}: resource ${resource}`).toBe(true)
    if (existsSync(join(path, 'kustomization.yaml'))) docs.push(...(await kustomize(path)))
    else docs.push(...((await yamlDocs(path)) as Doc[]))
  }
  return docs
}

/** An nginx size (`16m`, `512k`, `1048576`) in bytes. */
function nginxSize(value: string): number {
  const match = /^(\d+)([kKmMgG]?)$/.exec(value)
  if (!match) throw new Error(`not an nginx size: ${value}`)
  return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase())
}

/**
 * The request headers each `location` of an nginx server block sets, by nginx's rule: a level
 * inherits the proxy_set_header directives of the level above only when it has none of its own.
 */
function locationHeaders(conf: string): Map<string, Map<string, string>> {
  const server = /server\s*\{([\s\S]*)\}\s*$/.exec(conf.replace(/#.*$/gm, ''))![1]!
  const headersOf = (text: string) => new Map([...text.matchAll(/proxy_set_header\s+(\S+)\s+([^;]+);/g)].map((m) => [m[1]!.toLowerCase(), m[2]!.trim()]))
  const locations = [...server.matchAll(/location\s+(\S+)\s*\{([^}]*)\}/g)]
  const serverLevel = headersOf(server.replace(/location\s+\S+\s*\{[^}]*\}/g, ''))
  return new Map(locations.map(([, path, body]) => {
    const own = headersOf(body!)
    return [path!, own.size > 0 ? own : serverLevel]
  }))
}

/** What nginx sends as `variable` for a request carrying `host` as its Host header; maps of the conf are followed. */
function nginxValue(conf: string, variable: string, host: string): string {
  if (variable === '$http_host') return host
  if (variable === '$host') return host.replace(/:\d+$/, '').toLowerCase()
  const map = new RegExp(`map\\s+(\\$\\w+)\\s+\\${variable}\\s*\\{([^}]*)\\}`).exec(conf)
  if (!map) throw new Error(`nginxValue: ${variable} is not modelled`)
  const entries = new Map([...map[2]!.matchAll(/^\s*(\S+)\s+(\S+);/gm)].map((m) => [m[1]!.replace(/^''$/, ''), m[2]!]))
  const source = nginxValue(conf, map[1]!, host)
  return nginxValue(conf, entries.get(source) ?? entries.get('default')!, host)
}

/** A raw WebSocket upgrade to 127.0.0.1:`port` with exactly these headers; answers the status of the reply. */
async function upgradeStatus(port: number, headers: Record<string, string>): Promise<number> {
  const status = Promise.withResolvers<number>()
  let reply = ''
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(s, chunk) {
        reply += chunk.toString()
        const match = /^HTTP\/1\.1 (\d{3})/.exec(reply)
        if (match) {
          status.resolve(Number(match[1]))
          s.end()
        }
      },
      close: () => status.reject(new Error(`closed without an answer: ${reply}`)),
      error: (_, error) => status.reject(error),
    },
  })
  const all = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', ...headers }
  socket.write(`GET /v1/sensors/ws HTTP/1.1\r\n${Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`)
  return status.promise
}

const confs = ['nginx.single.conf', 'nginx.split.conf']
const readConf = (file: string) => Bun.file(join(deploy, file)).text()

describe('Kubernetes manifests', () => {
  test.each(['single', 'split'])('deploy/k8s/%s is consistent and its configuration is valid', async (shape) => {
    const docs = await kustomize(join(deploy, 'k8s', shape))
    for (const doc of docs) {
      expect(doc.apiVersion, JSON.stringify(doc).slice(0, 80)).toMatch(/^[\w.]+\/v\d|^v1$/)
      expect(doc.metadata.name).toMatch(/^[a-z0-9-]+$/)
    }
    const named = (kind: string) => new Map(docs.filter((d) => d.kind === kind).map((d) => [d.metadata.name, d]))
    const deployments = named('Deployment') as Map<string, Deployment>
    const services = named('Service') as Map<string, Doc & { spec: { selector?: Record<string, string>; ports?: Array<{ name: string }>; type?: string } }>
    const configMaps = named('ConfigMap') as Map<string, Doc & { data: Record<string, string> }>
    const secrets = named('Secret') as Map<string, Doc & { stringData: Record<string, string> }>
    const claims = named('PersistentVolumeClaim')
    expect(deployments.size).toBe(shape === 'single' ? 1 : 3)

    const served = new Set<string>()
    for (const deployment of deployments.values()) {
      const { selector, template } = deployment.spec
      expect(template.metadata.labels).toMatchObject(selector.matchLabels)
      const [container] = template.spec.containers
      expect(container!.livenessProbe?.httpGet.path).toBe('/healthz')
      expect(container!.readinessProbe?.httpGet.path).toBe('/readyz')
      // The environment the container gets must be one the service accepts.
      const env: Record<string, string> = {}
      for (const from of container!.envFrom ?? []) {
        if (from.configMapRef) Object.assign(env, configMaps.get(from.configMapRef.name)?.data ?? expect.unreachable(`ConfigMap ${from.configMapRef.name}`))
        if (from.secretRef) Object.assign(env, secrets.get(from.secretRef.name)?.stringData ?? expect.unreachable(`Secret ${from.secretRef.name}`))
      }
      for (const { name, value } of container!.env ?? []) env[name] = value
      const config = loadConfig(env)
      expect(config.databaseUrl).toStartWith('postgres://')
      expect(config.redisUrl).not.toBeNull()
      // Behind the ingress every client would otherwise share the controller's rate-limit bucket.
      expect(config.trustedProxies.length).toBeGreaterThan(0)
      for (const service of config.services) served.add(service)
      const volumes = new Map((template.spec.volumes ?? []).map((v) => [v.name, v]))
      for (const mount of container!.volumeMounts ?? []) expect(volumes.has(mount.name)).toBe(true)
      for (const volume of volumes.values()) if (volume.persistentVolumeClaim) expect(claims.has(volume.persistentVolumeClaim.claimName)).toBe(true)
      if (config.services.has('inference')) expect(container!.volumeMounts?.some((m) => volumes.get(m.name)?.persistentVolumeClaim)).toBe(true)
    }
    expect(served).toEqual(new Set(['tasks', 'sensors', 'inference']))

    for (const service of services.values()) {
      if (service.spec.type === 'ExternalName') continue
      const target = [...deployments.values()].find((d) => Object.entries(service.spec.selector ?? {}).every(([k, v]) => d.spec.template.metadata.labels[k] === v))
      expect(target, `Service ${service.metadata.name} selects a Deployment`).toBeDefined()
    }
    for (const hpa of named('HorizontalPodAutoscaler').values() as Iterable<Doc & { spec: { scaleTargetRef: { name: string }; minReplicas: number } }>) {
      expect(deployments.has(hpa.spec.scaleTargetRef.name)).toBe(true)
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2)
    }
    for (const ingress of named('Ingress').values() as Iterable<Doc & { spec: { rules: Array<{ http: { paths: Array<{ path: string; backend: { service: { name: string; port: { name: string } } } }> } }> } }>) {
      const paths = ingress.spec.rules.flatMap((rule) => rule.http.paths)
      for (const { backend } of paths) {
        const service = services.get(backend.service.name)
        expect(service, `Ingress backend ${backend.service.name}`).toBeDefined()
        expect(service!.spec.ports?.some((p) => p.name === backend.service.port.name)).toBe(true)
      }
      expect(paths.some((p) => p.path === '/')).toBe(true)
      const annotations = (ingress.metadata as { annotations?: Record<string, string> }).annotations ?? {}
      expect(nginxSize(annotations['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '1m')).toBeGreaterThanOrEqual(UPLOAD_BODY_LIMIT)
    }
  })
})

describe('Compose files', () => {
  test.each(['compose.yaml', 'compose.split.yaml'])('deploy/%s is consistent and its configuration is valid', async (file) => {
    const [compose] = (await yamlDocs(join(deploy, file))) as Array<{ services: Record<string, { build?: string; image?: string; environment?: Record<string, string>; depends_on?: Record<string, unknown> | string[]; volumes?: string[]; deploy?: { replicas: number } }>; volumes?: Record<string, unknown> }>
    const services = compose!.services
    const apps = Object.entries(services).filter(([, s]) => s.build)
    expect(apps.length).toBeGreaterThan(0)
    const served = new Set<string>()
    for (const [name, service] of apps) {
      expect(existsSync(join(deploy, service.build!, 'Dockerfile')), name).toBe(true)
      const config = loadConfig(service.environment ?? {})
      expect(config.databaseUrl).toStartWith('postgres://')
      expect(config.redisUrl).not.toBeNull()
      expect(service.deploy?.replicas).toBeGreaterThanOrEqual(2)
      expect(config.trustedProxies.length, `${name} trusts nginx's X-Forwarded-For`).toBeGreaterThan(0)
      // Every replica serving predictions mounts one named volume at MODELS_DIR, so an upload to one serves on all.
      if (config.services.has('inference')) {
        const shared = (service.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === config.modelsDir)
        expect(shared, `${name} mounts a volume at MODELS_DIR (${config.modelsDir})`).toBeDefined()
        expect(Object.keys(compose!.volumes ?? {})).toContain(shared![0]!)
      }
      for (const s of config.services) served.add(s)
    }
    expect(served).toEqual(new Set(['tasks', 'sensors', 'inference']))
    for (const [name, service] of Object.entries(services)) {
      const dependencies = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {})
      for (const dependency of dependencies) expect(services[dependency], `${name} depends on ${dependency}`).toBeDefined()
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!
        if (source.startsWith('.')) expect(existsSync(join(deploy, source)), `${name} mounts ${source}`).toBe(true)
      }
    }
    // The load balancer sends every upstream it names to a service that exists.
    const lb = services.lb!
    const conf = await Bun.file(join(deploy, lb.volumes![0]!.split(':')[0]!)).text()
    for (const [, host] of conf.matchAll(/server (\w+):3000/g)) expect(services[host!], `nginx upstream ${host}`).toBeDefined()
    expect(dirname(file)).toBe('.')
  })
})

describe('the nginx confs', () => {
  test.each(confs)('deploy/%s forwards the Host as sent, the client address, upgrades, and bodies up to the model upload limit', async (file) => {
    const conf = await readConf(file)
    expect(nginxSize(/client_max_body_size\s+(\S+);/.exec(conf)![1]!)).toBeGreaterThanOrEqual(UPLOAD_BODY_LIMIT)
    const locations = locationHeaders(conf)
    expect(locations.size).toBeGreaterThan(0)
    for (const [path, headers] of locations) {
      expect(nginxValue(conf, headers.get('host') ?? '$proxy_host', 'localhost:3000'), `Host sent for ${path}`).toBe('localhost:3000')
      expect(headers.get('x-forwarded-for'), `X-Forwarded-For sent for ${path}`).toBe('$remote_addr')
      expect(headers.get('upgrade'), `Upgrade sent for ${path}`).toBe('$http_upgrade')
    }
  })

  // What the service sees behind the conf when a browser opens the dashboard at http://localhost:3000.
  test('the Host each conf forwards passes the WebSocket Origin check of a real server; the port-less $host would not', async () => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'behind-nginx')
    await using server = await startServer({ DATABASE_URL: databaseUrl, MODELS_DIR: copyModels(join(dir, 'models')) })
    const port = Number(new URL(server.url).port)
    const asNginx = (host: string) => upgradeStatus(port, { host, origin: 'http://localhost:3000', 'x-api-key': key })
    for (const file of confs) {
      const conf = await readConf(file)
      const sent = nginxValue(conf, locationHeaders(conf).get('/v1/sensors')?.get('host') ?? locationHeaders(conf).get('/')!.get('host')!, 'localhost:3000')
      expect({ file, status: await asNginx(sent) }).toEqual({ file, status: 101 })
    }
    expect(await asNginx(nginxValue('', '$host', 'localhost:3000'))).toBe(403)
  })
})

const NGINX = '/usr/sbin/nginx'
const haveNginx = existsSync(NGINX)
if (!haveNginx && process.env.CI !== 'true') {
  console.warn(`\n⚠ test/deploy.test.ts: ${NGINX} is missing, so the shipped nginx confs are not run (apt-get install nginx). CI installs it and runs them.\n`)
}

/** A port nothing listens on right now. */
function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = listener
  listener.stop(true)
  return port
}

/** Runs `site` (a conf.d file of deploy/) in nginx on a free port, its upstream servers all pointed at `upstream`. */
async function runNginx(site: string, upstream: number) {
  const dir = tempDir('taskmesh-nginx-')
  for (const temp of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, temp))
  const port = freePort()
  const rewritten = site.replace(/server\s+\w+:3000;/g, `server 127.0.0.1:${upstream};`).replace(/listen\s+80;/, `listen 127.0.0.1:${port};`)
  writeFileSync(join(dir, 'site.conf'), rewritten)
  writeFileSync(join(dir, 'nginx.conf'), `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`)
  const proc = Bun.spawn([NGINX, '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdout: 'ignore', stderr: 'pipe' })
  const url = `http://127.0.0.1:${port}`
  await eventually(async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${await new Response(proc.stderr).text()}${await Bun.file(join(dir, 'error.log')).text()}`)
    return (await fetch(`${url}/healthz`).catch(() => null))?.ok
  }, { what: 'nginx answers /healthz', intervalMs: 20 })
  return {
    port,
    url,
    async [Symbol.asyncDispose]() {
      proc.kill('SIGTERM')
      await proc.exited
    },
  }
}

describe('the nginx confs, run by nginx in front of the real service', () => {
  test.skipIf(!haveNginx && process.env.CI !== 'true').each(confs)('deploy/%s: the dashboard\'s socket passes the Origin check, and an 8 MiB batch reaches the service', async (file) => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'behind-nginx')
    await using server = await startServer({ DATABASE_URL: databaseUrl, MODELS_DIR: copyModels(join(dir, 'models')), TRUSTED_PROXIES: '127.0.0.1', RATE_LIMIT_INFERENCE: '3/3' })
    const conf = await readConf(file)
    await using nginx = await runNginx(conf, Number(new URL(server.url).port))

    // nginx names the client by its own peer address: an X-Forwarded-For the client made up does not pick its bucket.
    const anonymous = (forwardedFor: string) => fetch(`${nginx.url}/v2/health/live`, { headers: { 'x-forwarded-for': forwardedFor } }).then((r) => r.status)
    expect([await anonymous('203.0.113.1'), await anonymous('203.0.113.2'), await anonymous('203.0.113.3'), await anonymous('203.0.113.4')]).toEqual([200, 200, 200, 429])

    // As a browser at http://localhost:PORT sends it, through nginx.
    const page = `localhost:${nginx.port}`
    expect(await upgradeStatus(nginx.port, { host: page, origin: `http://${page}`, 'x-api-key': key })).toBe(101)
    expect(await upgradeStatus(nginx.port, { host: page, origin: 'http://evil.example', 'x-api-key': key })).toBe(403)
    const socket = await TestSocket.open(`ws://127.0.0.1:${nginx.port}/v1/sensors/ws`, { 'x-api-key': key, origin: nginx.url })
    await socket.sync()
    socket.close()
    // The conf as it was, forwarding $host (no port): the same page is refused.
    {
      await using before = await runNginx(conf.replace(/proxy_set_header Host \S+;/, 'proxy_set_header Host $host;'), Number(new URL(server.url).port))
      const old = `localhost:${before.port}`
      expect(await upgradeStatus(before.port, { host: old, origin: `http://${old}`, 'x-api-key': key })).toBe(403)
    }

    const predict = (bytes: number) => {
      const json = JSON.stringify({ instances: [[1, 2, 3], [4, 5, 6]] })
      return fetch(`${nginx.url}/v1/models/seed-linear/predict`, {
        method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: json + ' '.repeat(bytes - json.length),
      })
    }
    const batch = await predict(BATCH_BODY_LIMIT - 1024)
    expect(batch.status).toBe(200)
    expect(((await batch.json()) as { predictions: unknown[] }).predictions).toHaveLength(2)
    // Past the batch limit the service answers itself, as problem+json, not nginx's HTML page.
    const over = await predict(BATCH_BODY_LIMIT + 1024)
    expect(over.status).toBe(413)
    expect(over.headers.get('content-type')).toBe('application/problem+json')
  })
})
