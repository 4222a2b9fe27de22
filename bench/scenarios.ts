// The registry of load scenarios `bun run bench` knows: each describes the requests every
// connection sends, generator-neutral (bench/generators.ts runs them with autocannon or wrk), or
// sets `measure` to bring a load generator of its own for another protocol.
import type { Seed, SeedOwner } from './seed.ts'

export interface PlannedRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'
  path: string
  headers: Record<string, string>
  body?: string
  /**
   * A conditional write (`If-Match`) to `path`: the generator sends the ETag it last saw for that
   * resource and keeps the one the response carries, so there are no 412s. `bodies` rotate.
   * No two connections of one run may share a conditional path, and no plain request of the
   * same run may read it (wrk matches responses to resources by the ETag's id).
   */
  conditional?: { bodies: string[] }
}

export interface ScenarioContext {
  seed: Seed
  connections: number
}

/** What one measured (or warm-up) run of a scenario against one target produced. */
export interface GeneratorResult {
  requests: number
  durationSec: number
  rps: number
  /** Milliseconds. */
  p50: number
  p99: number
  /** Connection errors and timeouts. */
  errors: number
  /** Responses whose status is not 2xx. */
  non2xx: number
  /** Responses whose status is not in the scenario's `expect` (includes non2xx when known). */
  unexpected: number
  statuses: Record<string, number>
  /** Mean bytes received per 2xx response (status line, headers and body); NaN when unknown. */
  bytesPerResponse: number
  /** CPU time of the load generator during the run, in seconds. */
  generatorCpuSec: number
}

/** Responses whose status is not in `expect`: GeneratorResult.unexpected. */
export function countUnexpected(statuses: Record<string, number>, expect: number[]): number {
  return Object.entries(statuses).reduce((sum, [status, count]) => sum + (expect.includes(Number(status)) ? 0 : count), 0)
}

export interface MeasureContext extends ScenarioContext {
  /** Base URL of the target, e.g. http://127.0.0.1:41234 */
  url: string
  target: 'service' | 'least-work' | 'ceiling'
  durationSec: number
  signal: AbortSignal
}

export interface Scenario {
  name: string
  description: string
  /** Statuses that count as success; anything else fails the scenario. */
  expect: number[]
  /** The requests connection `index` sends, in a loop. */
  connection(index: number, context: ScenarioContext): PlannedRequest[]
  /** The requests carry access tokens: the service then trusts the bench's issuer (OIDC_ISSUER) and owners get tokens. */
  tokens?: boolean
  /** Optional: measure with a custom generator instead of autocannon/wrk (e.g. WebSockets). */
  measure?(context: MeasureContext): Promise<GeneratorResult>
}

const json = { 'Content-Type': 'application/json' }

/** The heavy owner (≥ 100 tasks) connection `index` acts as, and how many connections share it. */
export function ownerOf(index: number, seed: Seed): { owner: SeedOwner; slot: number } {
  const owner = seed.heavy[index % seed.heavy.length]!
  return { owner, slot: Math.floor(index / seed.heavy.length) }
}

function auth(owner: SeedOwner): Record<string, string> {
  return { 'X-API-Key': owner.key }
}

/** `count` of the owner's readable task ids, starting at an offset that differs per connection. */
function rotatingIds(owner: SeedOwner, index: number, count: number): number[] {
  const ids = owner.readIds
  const start = (index * 17) % ids.length
  return Array.from({ length: Math.min(count, ids.length) }, (_, i) => ids[(start + i) % ids.length]!)
}

function getById(owner: SeedOwner, id: number, headers = auth(owner)): PlannedRequest {
  return { method: 'GET', path: `/v1/tasks/${id}`, headers }
}

/** The owner's access token (bench/issuer.ts) as the bearer: the service verifies it instead of a key. */
function tokenAuth(owner: SeedOwner): Record<string, string> {
  if (!owner.token) throw new Error(`owner ${owner.name} has no access token; the token scenario signs them after seeding`)
  return { Authorization: `Bearer ${owner.token}` }
}

function list(owner: SeedOwner): PlannedRequest {
  return { method: 'GET', path: '/v1/tasks?limit=20', headers: auth(owner) }
}

function create(owner: SeedOwner, seed: Seed, index: number): PlannedRequest {
  const bodies = seed.createBodies
  return { method: 'POST', path: '/v1/tasks', headers: { ...auth(owner), ...json }, body: bodies[index % bodies.length]! }
}

const patchBodies = ['{"completed":true}', '{"completed":false}']

function patch(owner: SeedOwner, slot: number): PlannedRequest {
  const id = owner.writeIds[slot]
  if (id === undefined) throw new Error(`owner ${owner.name} has no write target for slot ${slot}; seed more write targets`)
  return { method: 'PATCH', path: `/v1/tasks/${id}`, headers: { ...auth(owner), ...json }, conditional: { bodies: patchBodies } }
}

/**
 * Deterministic feature values in [-2, 2) with full double precision, like standardized inputs, for
 * the prediction scenarios (the kernel alone, in process, is `bun bench/kernel.ts`).
 */
function featureValues(seed: number, count: number): number[] {
  let a = seed >>> 0
  return Array.from({ length: count }, () => {
    a = (Math.imul(a ^ (a >>> 15), 2246822507) + 0x6d2b79f5) >>> 0
    return (a / 4294967296) * 4 - 2
  })
}

/** POST /v1/models/seed-linear/predict with one row by name; 16 rows rotating per connection. */
function predictSingle(owner: SeedOwner, index: number): PlannedRequest[] {
  return Array.from({ length: 16 }, (_, i) => {
    const [feature1, feature2, feature3] = featureValues(index * 16 + i + 1, 3)
    const body = JSON.stringify({ features: { feature1, feature2, feature3 } })
    return { method: 'POST', path: '/v1/models/seed-linear/predict', headers: { ...auth(owner), ...json }, body }
  })
}

/** POST /v1/models/diabetes-mlp/predict with 100 positional rows of its 10 features. */
function predictBatch(owner: SeedOwner, index: number): PlannedRequest {
  const values = featureValues(index + 1, 100 * 10)
  const instances = Array.from({ length: 100 }, (_, r) => values.slice(r * 10, r * 10 + 10))
  return { method: 'POST', path: '/v1/models/diabetes-mlp/predict', headers: { ...auth(owner), ...json }, body: JSON.stringify({ instances }) }
}

/** The 100-tree XGBoost booster of the tree scenarios (bench/models/diabetes-xgb.xgb.json) and its features. */
const TREE_MODEL = 'diabetes-xgb'
const TREE_FEATURES = ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6']

/** POST /v1/models/diabetes-xgb/predict with one row by name (values scaled as the diabetes data is); 16 rows rotating per connection. */
function predictTree(owner: SeedOwner, index: number): PlannedRequest[] {
  return Array.from({ length: 16 }, (_, i) => {
    const values = featureValues(index * 16 + i + 1, TREE_FEATURES.length)
    const features = Object.fromEntries(TREE_FEATURES.map((name, j) => [name, values[j]! * 0.05]))
    return { method: 'POST', path: `/v1/models/${TREE_MODEL}/predict`, headers: { ...auth(owner), ...json }, body: JSON.stringify({ features }) }
  })
}

/** POST /v1/models/diabetes-xgb/predict with 100 positional rows. */
function predictTreeBatch(owner: SeedOwner, index: number): PlannedRequest {
  const values = featureValues(index + 1, 100 * 10).map((v) => v * 0.05)
  const instances = Array.from({ length: 100 }, (_, r) => values.slice(r * 10, r * 10 + 10))
  return { method: 'POST', path: `/v1/models/${TREE_MODEL}/predict`, headers: { ...auth(owner), ...json }, body: JSON.stringify({ instances }) }
}

export const scenarios: Scenario[] = [
  {
    name: 'get-by-id',
    description: 'GET /v1/tasks/{id} of the caller\'s own tasks, ids rotating',
    expect: [200],
    connection(index, { seed }) {
      const { owner } = ownerOf(index, seed)
      return rotatingIds(owner, index, 100).map((id) => getById(owner, id))
    },
  },
  {
    name: 'get-by-id-token',
    description: 'get-by-id with an OpenID Connect access token (RS256 JWT) as the bearer instead of an API key',
    expect: [200],
    tokens: true,
    connection(index, { seed }) {
      const { owner } = ownerOf(index, seed)
      return rotatingIds(owner, index, 100).map((id) => getById(owner, id, tokenAuth(owner)))
    },
  },
  {
    name: 'list',
    description: 'GET /v1/tasks?limit=20 for owners with ≥ 100 tasks',
    expect: [200],
    connection(index, { seed }) {
      return [list(ownerOf(index, seed).owner)]
    },
  },
  {
    name: 'create',
    description: 'POST /v1/tasks with varied realistic bodies',
    expect: [201],
    connection(index, { seed }) {
      const { owner } = ownerOf(index, seed)
      return Array.from({ length: 16 }, (_, i) => create(owner, seed, index * 16 + i))
    },
  },
  {
    name: 'patch',
    description: 'PATCH /v1/tasks/{id} {"completed":…} with If-Match; each connection owns one task and tracks its ETag',
    expect: [200],
    connection(index, { seed }) {
      const { owner, slot } = ownerOf(index, seed)
      return [patch(owner, slot)]
    },
  },
  {
    name: 'mixed',
    description: '90% reads (70% get-by-id, 20% list) / 10% writes (5% create, 5% patch with If-Match)',
    expect: [200, 201],
    connection(index, { seed }) {
      const { owner, slot } = ownerOf(index, seed)
      const ids = rotatingIds(owner, index, 70)
      // One block of 20: 14 get, 4 list, 1 create, 1 patch; five blocks so the gets rotate over 70 ids.
      const block = 'GGLGGGCGGLGGGGLGGGPL'
      const requests: PlannedRequest[] = []
      let get = 0
      for (let round = 0; round < 5; round++) {
        for (const kind of block) {
          if (kind === 'G') requests.push(getById(owner, ids[get++ % ids.length]!))
          else if (kind === 'L') requests.push(list(owner))
          else if (kind === 'C') requests.push(create(owner, seed, index * 5 + round))
          else requests.push(patch(owner, slot))
        }
      }
      return requests
    },
  },
  {
    name: 'predict',
    description: 'POST /v1/models/seed-linear/predict with one row by feature name (the WASM kernel, 3 features)',
    expect: [200],
    connection(index, { seed }) {
      return predictSingle(ownerOf(index, seed).owner, index)
    },
  },
  {
    name: 'predict-tree',
    description: 'POST /v1/models/diabetes-xgb/predict with one row by feature name (an XGBoost booster as saved, 100 trees, in the WASM kernel)',
    expect: [200],
    connection(index, { seed }) {
      return predictTree(ownerOf(index, seed).owner, index)
    },
  },
  {
    name: 'predict-tree-batch',
    description: 'POST /v1/models/diabetes-xgb/predict with 100 positional rows (100 XGBoost trees in the WASM kernel)',
    expect: [200],
    connection(index, { seed }) {
      return [predictTreeBatch(ownerOf(index, seed).owner, index)]
    },
  },
  {
    name: 'predict-batch',
    description: 'POST /v1/models/diabetes-mlp/predict with 100 positional rows (10→32→16→1 MLP in the WASM kernel)',
    expect: [200],
    connection(index, { seed }) {
      return [predictBatch(ownerOf(index, seed).owner, index)]
    },
  },
]

export function scenarioNamed(name: string): Scenario | undefined {
  return scenarios.find((scenario) => scenario.name === name)
}
