// The deployment files cannot be applied here (no Docker engine, no cluster), so
// they are parsed and checked for what would break a rollout: dangling
// references, missing probes, and configuration the service itself would refuse.
import { describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { loadConfig } from '../src/config'

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
    }
  })
})

describe('Compose files', () => {
  test.each(['compose.yaml', 'compose.split.yaml'])('deploy/%s is consistent and its configuration is valid', async (file) => {
    const [compose] = (await yamlDocs(join(deploy, file))) as Array<{ services: Record<string, { build?: string; image?: string; environment?: Record<string, string>; depends_on?: Record<string, unknown> | string[]; volumes?: string[]; deploy?: { replicas: number } }> }>
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
    expect(conf).toContain('proxy_set_header Upgrade $http_upgrade')
    expect(dirname(file)).toBe('.')
  })
})
