// The data the bench runs against: owners with API keys made by the keys CLI, and a realistic,
// deterministic tasks table created through the HTTP API (so every row is what the service writes).
import { cliKey } from '../scripts/keys-cli.ts'
import { track } from './processes.ts'
import { mulberry32 as random } from './prng.ts'

export interface SeedOwner {
  name: string
  key: string
  /** An access token of the bench's issuer (bench/issuer.ts) whose `sub` is this owner, when the token scenario runs. */
  token?: string
  /** Every task id of this owner, ascending. */
  taskIds: number[]
  /** Ids reserved for conditional writes (PATCH with If-Match); never read by the read scenarios. */
  writeIds: number[]
  /** The rest: what read scenarios fetch. */
  readIds: number[]
}

export interface Seed {
  owners: SeedOwner[]
  /** Owners with at least 100 tasks: the ones load connections act as. */
  heavy: SeedOwner[]
  tasks: number
  /** Request bodies for POST /v1/tasks, from the same generator as the seed. */
  createBodies: string[]
  seconds: { keys: number; tasks: number }
}

export interface SeedPlan {
  owners: number
  /** The first `heavyOwners` owners get between heavyTasks[0] and heavyTasks[1] tasks. */
  heavyOwners: number
  heavyTasks: [number, number]
  /** The others get a skewed count in this range. */
  lightTasks: [number, number]
  /** Tasks per heavy owner reserved for PATCH targets (≥ connections / heavyOwners). */
  writeTargets: number
}

export const fullSeed: SeedPlan = { owners: 104, heavyOwners: 64, heavyTasks: [110, 230], lightTasks: [3, 60], writeTargets: 2 }
export const smokeSeed: SeedPlan = { owners: 12, heavyOwners: 8, heavyTasks: [100, 120], lightTasks: [1, 10], writeTargets: 2 }

export { random }

const verbs = ['Review', 'Update', 'Fix', 'Write', 'Plan', 'Call', 'Email', 'Refactor', 'Deploy', 'Test', 'Order', 'Book',
  'Prepare', 'Clean up', 'Check', 'Renew', 'Draft', 'Migrate', 'Archive', 'Schedule']
const nouns = ['the quarterly report', 'invoice #', 'sensor calibration', 'onboarding docs', 'the café menu', 'server certificates',
  'backup job', 'team offsite', 'dentist appointment', 'pull request #', 'grocery list', 'API keys rotation', 'slides for Monday',
  'garden irrigation', 'flaky test in CI', 'insurance papers', 'Zürich trip', 'database indexes', 'customer feedback', 'tax return']
const sentences = [
  'Needs sign-off from finance before Friday.',
  'See the thread in #ops for context.',
  'Blocked until the vendor replies.',
  'Low effort, high impact; do it first thing in the morning.',
  'Remember to attach the screenshots and the log excerpt.',
  'Ask Ana whether the 2nd floor room is free.',
  'Temperature readings drift by about 0.5 °C after a week.',
  'Split into smaller steps if it takes more than an hour.',
  'Follow the checklist in the wiki, then update the ticket.',
  'Last time this took two attempts — budget extra time.',
]
const priorities = ['low', 'normal', 'normal', 'normal', 'high', 'high', 'urgent', 'low', 'normal', 'normal'] as const

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!
}

function isoDay(base: number, offsetDays: number): string {
  return new Date(base + offsetDays * 86_400_000).toISOString().slice(0, 10)
}

const baseDay = Date.UTC(2026, 0, 15)

/** A body for POST /v1/tasks as a real client would send it. */
export function taskInput(rand: () => number): Record<string, unknown> {
  const noun = pick(rand, nouns)
  const title = `${pick(rand, verbs)} ${noun}${noun.endsWith('#') ? Math.floor(rand() * 5000) : ''}`
  const input: Record<string, unknown> = { title, priority: pick(rand, priorities) }
  const d = rand()
  if (d < 0.45) {
    const count = 1 + Math.floor(rand() * 3)
    input.description = Array.from({ length: count }, () => pick(rand, sentences)).join(' ')
  } else if (d < 0.6) {
    input.description = null
  }
  input.due_date = rand() < 0.35 ? null : isoDay(baseDay, Math.floor(rand() * 240) - 30)
  input.completed = rand() < 0.3
  return input
}

/** Tasks per owner: the heavy ones first. */
export function taskCounts(plan: SeedPlan, rand: () => number): number[] {
  return Array.from({ length: plan.owners }, (_, i) => {
    const [min, max] = i < plan.heavyOwners ? plan.heavyTasks : plan.lightTasks
    // Light owners are skewed towards few tasks (most people have a short list).
    const r = i < plan.heavyOwners ? rand() : rand() ** 2
    return min + Math.floor(r * (max - min + 1))
  })
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!)
  })
  await Promise.all(workers)
}

interface KeysOptions {
  databaseUrl: string
  concurrency: number
  /** Called as each key is made, so seeding can start before the last one. */
  onKey?(owner: string, key: string): void
}

/** `bun run keys create OWNER` for each owner, `concurrency` at a time. */
async function createKeys(owners: string[], options: KeysOptions): Promise<Map<string, string>> {
  const keys = new Map<string, string>()
  await pool(owners, options.concurrency, async (owner) => {
    const key = await cliKey(options.databaseUrl, owner, [], { onSpawn: track })
    keys.set(owner, key)
    options.onKey?.(owner, key)
  })
  return keys
}

/**
 * Creates the tasks through POST /v1/tasks with `concurrency` requests in flight. `keyOf` may
 * resolve later (keys still being made): a request waits for its owner's key.
 */
export async function seedTasks(url: string, plan: SeedPlan, keyOf: (owner: string) => Promise<string>, ownerNames: string[], concurrency: number): Promise<Omit<Seed, 'seconds'>> {
  const rand = random(20261128)
  const counts = taskCounts(plan, rand)
  const jobs: Array<{ owner: number; body: string }> = []
  // Interleave owners so created_at values of different owners mix like real traffic.
  const max = Math.max(...counts)
  for (let n = 0; n < max; n++) {
    for (let o = 0; o < counts.length; o++) if (n < counts[o]!) jobs.push({ owner: o, body: JSON.stringify(taskInput(rand)) })
  }
  const ids: number[][] = counts.map(() => [])
  const keys = new Map<string, string>()
  await pool(jobs, concurrency, async ({ owner, body }) => {
    const name = ownerNames[owner]!
    const key = keys.get(name) ?? await keyOf(name)
    keys.set(name, key)
    const post = () => fetch(`${url}/v1/tasks`, {
      method: 'POST',
      headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
      body,
    })
    // A dropped keep-alive connection is retried (at worst one extra task; only answered ids are kept).
    let response: Response | undefined
    for (let attempt = 1; !response; attempt++) {
      try {
        response = await post()
      } catch (error) {
        if (attempt >= 3) throw error
        await Bun.sleep(50 * attempt)
      }
    }
    const text = await response.text()
    if (response.status !== 201) throw new Error(`seeding: POST /v1/tasks answered ${response.status}: ${text.slice(0, 300)}`)
    ids[owner]!.push((JSON.parse(text) as { id: number }).id)
  })
  const owners: SeedOwner[] = ownerNames.map((name, o) => {
    const taskIds = ids[o]!.sort((a, b) => a - b)
    const reserved = o < plan.heavyOwners ? plan.writeTargets : 0
    return { name, key: keys.get(name)!, taskIds, writeIds: taskIds.slice(0, reserved), readIds: taskIds.slice(reserved) }
  })
  const createRand = random(42)
  return {
    owners,
    heavy: owners.filter((owner) => owner.taskIds.length >= 100),
    tasks: jobs.length,
    createBodies: Array.from({ length: 256 }, () => JSON.stringify(taskInput(createRand))),
  }
}

export function ownerNames(plan: SeedPlan): string[] {
  return Array.from({ length: plan.owners }, (_, i) => `bench-owner-${String(i).padStart(3, '0')}`)
}

/** The seed plan of a run with `plans` plans per scenario: each needs PATCH targets of its own. */
export function planFor(smoke: boolean, plans: number): SeedPlan {
  const plan: SeedPlan = { ...(smoke ? smokeSeed : fullSeed) }
  plan.writeTargets = Math.max(plan.writeTargets, Math.ceil(plans / plan.heavyOwners))
  return plan
}

/**
 * Keys with the keys CLI and tasks through the API, around the service's start: the first key
 * creates and migrates the database, then `startService` brings the service up, and the other
 * keys are made while the seed already goes in for owners that have one.
 */
export async function seedService<S extends { url: string }>(plan: SeedPlan, databaseUrl: string, startService: () => Promise<S>, signal: AbortSignal): Promise<{ service: S; seed: Seed }> {
  const start = performance.now()
  const seconds = () => (performance.now() - start) / 1000
  const names = ownerNames(plan)
  const waiting = new Map(names.map((name) => [name, Promise.withResolvers<string>()]))
  for (const { promise } of waiting.values()) promise.catch(() => {}) // a failure surfaces through keysMade
  const onKey = (owner: string, key: string) => waiting.get(owner)!.resolve(key)
  await createKeys(names.slice(0, 1), { databaseUrl, concurrency: 1, onKey })
  signal.throwIfAborted()
  const service = await startService()
  signal.throwIfAborted()

  let keysSec = 0
  const keysMade = createKeys(names.slice(1), { databaseUrl, concurrency: 4, onKey }).then(() => {
    keysSec = seconds()
  })
  keysMade.catch((error: unknown) => {
    for (const { reject } of waiting.values()) reject(error)
  })
  const [seeded] = await Promise.all([seedTasks(service.url, plan, (owner) => waiting.get(owner)!.promise, names, 32), keysMade])
  const seed: Seed = { ...seeded, seconds: { keys: keysSec, tasks: seconds() } }
  console.log(`seeded ${seed.tasks.toLocaleString('en-US')} tasks over ${seed.owners.length} owners (${seed.heavy.length} with ≥ 100 tasks) ` +
    `through the API and made ${names.length} keys with the keys CLI in ${seed.seconds.tasks.toFixed(1)} s`)
  signal.throwIfAborted()
  return { service, seed }
}
