// The data the bench runs against: owners with API keys made by the keys CLI, and a
// realistic tasks table created through the HTTP API (so every row is exactly what the
// service would write). Deterministic: the same plan gives the same titles and counts.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface SeedOwner {
  name: string
  key: string
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

import { mulberry32 as random } from './prng.ts'

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

export interface KeysOptions {
  cwd: string
  databaseUrl: string
  bun: string
  concurrency: number
  /** Registers a child so it is killed if the bench is interrupted. */
  track(child: Bun.Subprocess): void
  /** Called as each key is made, so seeding can start before the last one. */
  onKey?(owner: string, key: string): void
}

/**
 * The `keys` script of package.json (`bun src/cli/keys.ts`) with this very bun binary, so it
 * works even when no `bun` is on PATH (which `bun run keys` would need).
 */
function keysCommand(options: KeysOptions): string[] {
  const pkg = JSON.parse(readFileSync(join(options.cwd, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  const script = pkg.scripts?.keys
  const words = script?.trim().split(/\s+/) ?? []
  if (words[0] === 'bun' && words.length > 1 && words.every((w) => /^[\w./@:=-]+$/.test(w))) return [options.bun, ...words.slice(1)]
  return [options.bun, 'run', 'keys']
}

/** `bun run keys create OWNER` for each owner; the key is the last line of stdout. */
export async function createKeys(owners: string[], options: KeysOptions): Promise<Map<string, string>> {
  const keys = new Map<string, string>()
  const command = keysCommand(options)
  const one = async (owner: string) => {
    for (let attempt = 1; ; attempt++) {
      const child = Bun.spawn([...command, 'create', owner], {
        cwd: options.cwd,
        env: { ...process.env, DATABASE_URL: options.databaseUrl, LOG_LEVEL: 'warn' },
        stdout: 'pipe',
        stderr: 'pipe',
      })
      options.track(child)
      const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
      const key = stdout.trim().split('\n').pop()?.trim() ?? ''
      if (code === 0 && /^tm_[A-Za-z0-9]{8}_[A-Za-z0-9]+$/.test(key)) {
        keys.set(owner, key)
        options.onKey?.(owner, key)
        return
      }
      // Several CLIs opening the database at once can hit SQLITE_BUSY before busy_timeout is set.
      if (attempt < 6 && /database is locked|SQLITE_BUSY/i.test(stderr)) {
        await Bun.sleep(100 * attempt)
        continue
      }
      throw new Error(`keys create ${owner} failed (exit ${code}): ${stderr.trim() || stdout.trim()}`)
    }
  }
  await pool(owners, options.concurrency, one)
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
