// Create, list and complete a task through the typed client.
//   TASKMESH_URL=http://localhost:3000 TASKMESH_KEY=tm_… bun examples/tasks.ts
import { createClient } from '../src/client'

const url = Bun.env.TASKMESH_URL ?? 'http://localhost:3000'
const apiKey = Bun.env.TASKMESH_KEY
if (!apiKey) {
  console.error('set TASKMESH_KEY to a key from `bun run keys create OWNER`')
  process.exit(2)
}
const api = createClient(url, { apiKey })

const created = await api.v1.tasks.post({ title: 'Try taskmesh', priority: 'high', due_date: '2030-01-31' })
if (created.error) throw new Error(`create failed: ${created.status} ${JSON.stringify(created.error.value)}`)
console.log('created', created.data.id, created.data.title)

const page = await api.v1.tasks.get({ query: { completed: false, sort: '-priority', limit: 5 } })
if (page.error) throw new Error(`list failed: ${page.status}`)
console.log('open tasks:', page.data.items.map((task) => `${task.id} ${task.priority} ${task.title}`).join(', '))

const done = await api.v1.tasks({ id: created.data.id }).patch({ completed: true })
if (done.error) throw new Error(`complete failed: ${done.status}`)
console.log('completed', done.data.id, 'version', done.data.version)
