// The least-work reference's data: every task the bench seeded, read back page by page from the
// service's own API once seeding is done, and each owner's raw key. Reading over HTTP gives the
// exact rows the service holds (ids, timestamps, versions, a retried extra task) whatever its
// store, SQLite or PostgreSQL; bench/least-work-db.ts loads them into the reference's SQLite file.
import { writeFileSync } from 'node:fs'
import type { Seed, SeedOwner } from './seed.ts'

/** A task as the service renders it (src/tasks/service.ts toTask). */
export interface ExportedTask {
  id: number
  title: string
  description: string | null
  owner: string
  priority: string
  due_date: string | null
  completed: boolean
  created_at: string
  updated_at: string
  version: number
}

export interface LeastWorkFixtures {
  /** Raw API key (or bearer token) → owner. */
  keys: Record<string, string>
  tasks: ExportedTask[]
}

const PAGE = 100

async function ownerTasks(url: string, owner: SeedOwner): Promise<ExportedTask[]> {
  const tasks: ExportedTask[] = []
  let cursor: string | null = null
  do {
    const query: string = cursor === null ? `limit=${PAGE}` : `limit=${PAGE}&cursor=${encodeURIComponent(cursor)}`
    const response = await fetch(`${url}/v1/tasks?${query}`, { headers: { 'X-API-Key': owner.key } })
    const text = await response.text()
    if (response.status !== 200) throw new Error(`least work: reading ${owner.name}'s tasks, GET /v1/tasks answered ${response.status}: ${text.slice(0, 300)}`)
    const page = JSON.parse(text) as { items: ExportedTask[]; next_cursor: string | null }
    tasks.push(...page.items)
    cursor = page.next_cursor
  } while (cursor !== null)
  return tasks
}

/** Reads every owner's tasks from the service into `file`; answers how many tasks it holds. */
export async function exportSeed(serviceUrl: string, seed: Seed, file: string): Promise<number> {
  const keys: Record<string, string> = {}
  for (const owner of seed.owners) {
    keys[owner.key] = owner.name
    if (owner.token) keys[owner.token] = owner.name
  }
  const perOwner: ExportedTask[][] = []
  let next = 0
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < seed.owners.length) {
      const index = next++
      perOwner[index] = await ownerTasks(serviceUrl, seed.owners[index]!)
    }
  }))
  // Ascending ids: the reference inserts them in the order the service created them.
  const tasks = perOwner.flat().sort((a, b) => a.id - b.id)
  const fixtures: LeastWorkFixtures = { keys, tasks }
  writeFileSync(file, JSON.stringify(fixtures))
  return tasks.length
}
