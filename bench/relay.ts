// The fan-out's baseline: a bare Bun.serve relaying the sensor protocol (subscribe and publish
// over WebSocket, or POST /v1/sensors/{id}/readings) without auth, history or checks — what Bun
// alone does with the same messages. bench/fanout.ts measures the service against it.
//
//   PORT=0 bun bench/relay.ts
//
// Prints {"url":…,"msg":"listening"} on stdout.
let seq = 0

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? '127.0.0.1',
  async fetch(request, server) {
    if (server.upgrade(request, { data: undefined })) return
    const url = new URL(request.url)
    const match = /^\/v1\/sensors\/([A-Za-z0-9_.-]{1,64})\/readings$/.exec(url.pathname)
    if (request.method === 'POST' && match) {
      const topic = `sensors/${match[1]}`
      const body = await request.text()
      seq++
      server.publish(topic, `{"topic":"${topic}","seq":${seq},"ts":"${new Date().toISOString()}","data":${body}}`, false)
      return Response.json({ topic, seq }, { status: 202 })
    }
    return new Response('not found', { status: 404 })
  },
  websocket: {
    message(ws, message) {
      const parsed = JSON.parse(String(message)) as { op: string; topic: string; data: unknown }
      if (parsed.op === 'publish') {
        seq++
        server.publish(parsed.topic, `{"topic":"${parsed.topic}","seq":${seq},"ts":"${new Date().toISOString()}","data":${JSON.stringify(parsed.data)}}`, false)
      } else if (parsed.op === 'subscribe') {
        ws.subscribe(parsed.topic)
        ws.send(JSON.stringify({ op: 'subscribed', topic: parsed.topic, epoch: 'relay', recovered: true }))
      }
    },
  },
})

console.log(JSON.stringify({ url: `http://127.0.0.1:${server.port}`, msg: 'listening' }))
