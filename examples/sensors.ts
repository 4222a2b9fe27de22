// Print the live readings of a sensor through the typed client's socket, after replaying
// the last few from the history.
//   TASKMESH_URL=http://localhost:3000 TASKMESH_KEY=tm_… bun examples/sensors.ts [SENSOR_ID]
import { createClient, openSensorFeed } from '../src/client'

const url = Bun.env.TASKMESH_URL ?? 'http://localhost:3000'
const apiKey = Bun.env.TASKMESH_KEY
if (!apiKey) {
  console.error('set TASKMESH_KEY to a key from `bun run keys create OWNER`')
  process.exit(2)
}
const sensorId = process.argv[2] ?? 'temperature-1'
const api = createClient(url, { apiKey })

const known = await api.v1.sensors.get()
if (known.error) throw new Error(`list failed: ${known.status}`)
console.log('sensors:', known.data.items.map((s) => `${s.sensor_id} (seq ${s.last.seq})`).join(', ') || 'none yet')
const last = known.data.items.find((s) => s.sensor_id === sensorId)?.last.seq ?? 0

const feed = await openSensorFeed(api)
feed.subscribe(({ data }) => {
  if ('seq' in data) console.log(`${data.topic} #${data.seq} ${new Date(data.ts).toISOString()}`, JSON.stringify(data.data))
  else if (data.op === 'subscribed') console.log(`subscribed to ${data.topic} (epoch ${data.epoch}, replay ${data.recovered ? 'complete' : 'impossible'})`)
  else if (data.op === 'error') console.error(`error ${data.code}: ${data.message}`)
})
feed.on('open', () => feed.send({ op: 'subscribe', topic: `sensors/${sensorId}`, since: Math.max(0, last - 5) }))
feed.on('close', (event) => {
  console.log(`closed: ${event.code} ${event.reason}`)
  process.exit(event.code === 1000 ? 0 : 1)
})
