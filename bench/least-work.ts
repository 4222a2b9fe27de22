// The least-work reference: a bare Bun.serve + bun:sqlite server on the service's schema and
// indexes and the rows the bench seeded, doing only the work each scenario's requests cannot
// avoid — the key looked up in a Map, one prepared statement, the task or prediction built and
// stringified, ETag and X-Request-Id. The service reaches some fraction (or, for group-committed
// creates, some multiple) of it: what `bun run bench` reports beside the ceiling.
//
//   PORT=0 LEAST_WORK_FIXTURES=fixtures.json LEAST_WORK_DB=least-work.sqlite MODELS_DIR=models bun bench/least-work.ts
//
// LEAST_WORK_FIXTURES is what bench/least-work-data.ts wrote: the raw keys and the service's tasks,
// loaded into LEAST_WORK_DB (a fresh file) before listening. Prints {"url":…,"msg":"listening"} on
// stdout; exits when its parent goes away.
import { existsSync, readFileSync } from 'node:fs'
import type { LeastWorkFixtures } from './least-work-data.ts'
import { openReferenceDb } from './least-work-db.ts'
import { problem } from './least-work-http.ts'
import { loadModels, predictRoutes } from './least-work-models.ts'
import { taskRoutes } from './least-work-tasks.ts'

const fixturesPath = process.env.LEAST_WORK_FIXTURES
const dbPath = process.env.LEAST_WORK_DB
if (!fixturesPath || !dbPath) throw new Error('LEAST_WORK_FIXTURES and LEAST_WORK_DB must be set')
if (existsSync(dbPath)) throw new Error(`${dbPath} exists; least work loads its rows into a fresh file`)

const fixtures = JSON.parse(readFileSync(fixturesPath, 'utf8')) as LeastWorkFixtures
const db = openReferenceDb(dbPath, fixtures.tasks)
const owners = new Map(Object.entries(fixtures.keys))
// A bearer token (the token scenario) is looked up like a key: the least a token the service verified before costs.
const ownerOf = (request: Request) => owners.get(request.headers.get('x-api-key') ?? request.headers.get('authorization')?.slice(7) ?? '')
const models = await loadModels(process.env.MODELS_DIR ?? 'models')

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? '127.0.0.1',
  routes: {
    ...taskRoutes(db, ownerOf),
    ...predictRoutes(models, ownerOf),
  },
  fetch: (request) => problem(404, `least work does not serve ${request.method} ${new URL(request.url).pathname}`),
})

console.log(JSON.stringify({ url: `http://${server.hostname}:${server.port}`, msg: 'listening', tasks: fixtures.tasks.length, models: [...models.keys()] }))

// Never outlive the bench that started us.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) process.exit(0)
}, 500).unref()
process.on('SIGTERM', () => {
  void server.stop(true)
  db.close()
  process.exit(0)
})
