// The ceiling: a bare Bun.serve answering the request shapes of the tasks API with
// responses of the same size, without framework, auth or database. What the service
// reaches as a fraction of this is the number `bun run bench` reports.
//
//   PORT=0 CEILING_FIXTURES=task-and-page.json bun bench/ceiling.ts
//
// CEILING_FIXTURES (optional) holds { "task": "<a task as the service renders it>",
// "page": "<a GET /v1/tasks?limit=20 body>" } so the sizes match the seeded data exactly.
// Prints {"url":…,"msg":"listening"} on stdout; exits when its parent goes away.
import { readFileSync } from 'node:fs'

interface Fixtures {
  task: string
  page: string
}

function defaultFixtures(): Fixtures {
  const task = (id: number) => ({
    id,
    title: 'Review the quarterly report',
    description: 'Needs sign-off from finance before Friday. See the thread in #ops for context.',
    owner: 'bench-owner-000',
    priority: 'normal',
    due_date: '2026-03-01',
    completed: false,
    created_at: '2026-11-28T03:56:39.794Z',
    updated_at: '2026-11-28T03:56:39.794Z',
    version: 1,
  })
  return {
    task: JSON.stringify(task(1)),
    page: JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => task(100 - i)), next_cursor: 'WzEsMSwxNzY0MzAxNzk5Nzk0LDgwXQ' }),
  }
}

const fixtures: Fixtures = process.env.CEILING_FIXTURES
  ? (JSON.parse(readFileSync(process.env.CEILING_FIXTURES, 'utf8')) as Fixtures)
  : defaultFixtures()

const taskObject = JSON.parse(fixtures.task) as Record<string, unknown>
// Everything after `"id":N` of the task, so GET can answer the id it was asked for.
const taskTail = fixtures.task.slice(fixtures.task.indexOf(','))
const page = fixtures.page
const jsonType = 'application/json;charset=utf-8'
let nextId = 1_000_000_000

/** The version an `If-Match: "id.version"` names, else 0. */
function versionOf(ifMatch: string | null): number {
  if (ifMatch === null) return 0
  const dot = ifMatch.lastIndexOf('.')
  return dot === -1 ? 0 : Number.parseInt(ifMatch.slice(dot + 1), 10) || 0
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? '127.0.0.1',
  routes: {
    '/v1/tasks': {
      GET: () => new Response(page, { headers: { 'content-type': jsonType } }),
      POST: async (request) => {
        const input = (await request.json()) as Record<string, unknown>
        const now = new Date().toISOString()
        const id = nextId++
        const body = JSON.stringify({
          id,
          title: input.title,
          description: input.description ?? null,
          owner: taskObject.owner,
          priority: input.priority ?? 'normal',
          due_date: input.due_date ?? null,
          completed: input.completed ?? false,
          created_at: now,
          updated_at: now,
          version: 1,
        })
        return new Response(body, {
          status: 201,
          headers: { 'content-type': jsonType, location: `/v1/tasks/${id}`, etag: `"${id}.1"` },
        })
      },
    },
    '/v1/tasks/:id': {
      GET: (request) => {
        const id = request.params.id
        return new Response(`{"id":${id}${taskTail}`, { headers: { 'content-type': jsonType, etag: `"${id}.1"` } })
      },
      PATCH: async (request) => {
        const patch = (await request.json()) as Record<string, unknown>
        const id = Number(request.params.id)
        const version = versionOf(request.headers.get('if-match')) + 1
        const body = JSON.stringify({ ...taskObject, ...patch, id, updated_at: new Date().toISOString(), version })
        return new Response(body, { headers: { 'content-type': jsonType, etag: `"${id}.${version}"` } })
      },
    },
    // Predictions: parse the body and answer one number per row, in the service's shape (no model, no checks).
    '/v1/models/:name/predict': {
      POST: async (request) => {
        const input = (await request.json()) as { features?: Record<string, number>; instances?: Array<number[] | Record<string, number>> }
        const rows = input.instances ?? [input.features ?? {}]
        const predictions = rows.map((row) => {
          let sum = 0.25000000000000067
          for (const value of Array.isArray(row) ? row : Object.values(row)) sum += value * 0.4999999999999991
          return sum
        })
        return new Response(JSON.stringify({ model: request.params.name, version: '1', predictions }), { headers: { 'content-type': jsonType } })
      },
    },
  },
  fetch: () => new Response('{"status":404}', { status: 404, headers: { 'content-type': jsonType } }),
})

console.log(JSON.stringify({ url: `http://${server.hostname}:${server.port}`, msg: 'listening' }))

// Never outlive the bench that started us.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) process.exit(0)
}, 500).unref()
process.on('SIGTERM', () => {
  void server.stop(true)
  process.exit(0)
})
