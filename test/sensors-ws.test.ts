// The sensor feed socket on a real server: auth at the upgrade, fan-out, replay
// across the seam, bad messages, limits (1009, 1008, 1013) and shutdown (1001).
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createClient, openSensorFeed } from '../src/client'
import { problemOf, tempDir } from './helpers'
import { cliKey, startServer } from './server'
import { keySocket, sensorApp, TestSocket, ticketFor, upgradeRequest, wsUrl } from './sensors.helpers'

const T0 = Date.parse('2030-01-02T03:04:05.000Z')
const reading = (topic: string, seq: number, data: unknown, ts = expect.any(String)) => ({ topic, seq, ts, data })

describe('upgrade auth', () => {
  test('no key: 401 problem+json and no socket', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const response = await upgradeRequest(url)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toStartWith('Bearer')
    expect((await problemOf(response)).detail).toContain('API key')
    await expect(TestSocket.open(wsUrl(url))).rejects.toThrow()
    expect(t.feed.hub.connections).toBe(0)
  })

  test('a bad key: 401; a key without sensors:read: 403', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const bad = await upgradeRequest(url, '', { 'x-api-key': 'tm_AAAAAAAA_' + 'b'.repeat(40) })
    expect(bad.status).toBe(401)
    await problemOf(bad)
    const writer = await t.key(undefined, ['sensors:write'])
    const forbidden = await upgradeRequest(url, '', { 'x-api-key': writer })
    expect(forbidden.status).toBe(403)
    await problemOf(forbidden)
    await expect(TestSocket.open(wsUrl(url), { 'x-api-key': writer })).rejects.toThrow()
    expect(t.feed.hub.connections).toBe(0)
  })

  test('a key in X-API-Key or Authorization: Bearer opens the socket', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const a = await TestSocket.open(wsUrl(url), { 'x-api-key': key })
    const b = await TestSocket.open(wsUrl(url), { authorization: `Bearer ${key}` })
    await a.sync()
    await b.sync()
    expect(t.feed.hub.connections).toBe(2)
    a.close()
    b.close()
  })

  test('a ticket works once; a forged or reused one is 401', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const ticket = await ticketFor(t, await t.key())
    const socket = await TestSocket.open(wsUrl(url, `?ticket=${ticket}`))
    await socket.sync()
    const reused = await upgradeRequest(url, `?ticket=${ticket}`)
    expect(reused.status).toBe(401)
    expect((await problemOf(reused)).detail).toContain('ticket')
    await expect(TestSocket.open(wsUrl(url, `?ticket=${ticket}`))).rejects.toThrow()
    const forged = await upgradeRequest(url, `?ticket=tk_${'A'.repeat(43)}`)
    expect(forged.status).toBe(401)
    expect((await upgradeRequest(url, '?ticket=')).status).toBe(401)
    socket.close()
  })

  test('a ticket expires after 30 s (on the injected clock)', async () => {
    let now = T0
    await using t = await sensorApp({ now: () => now })
    const url = t.listen()
    const key = await t.key()
    const fresh = await ticketFor(t, key)
    const stale = await ticketFor(t, key)
    now += 29_999
    const socket = await TestSocket.open(wsUrl(url, `?ticket=${fresh}`))
    now += 1
    expect((await upgradeRequest(url, `?ticket=${stale}`)).status).toBe(401)
    socket.close()
  })

  test('a ticket carries the scopes of its key: without sensors:write, publish is an error and the socket stays open', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const reader = await t.key(undefined, ['sensors:read'])
    const socket = await TestSocket.open(wsUrl(url, `?ticket=${await ticketFor(t, reader)}`))
    socket.send({ op: 'publish', topic: 'sensors/a', data: { v: 1 } })
    expect(await socket.next()).toEqual({ op: 'error', code: 'forbidden', message: 'publishing needs the scope sensors:write' })
    socket.send({ op: 'ping' })
    expect(await socket.next()).toEqual({ op: 'pong' })
    expect(t.feed.hub.published).toBe(0)
    socket.close()
  })

  test('a page of another origin may not open the socket (unless CORS_ORIGINS allows it); the service\'s own may', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const foreign = await upgradeRequest(url, '', { 'x-api-key': key, origin: 'https://evil.example' })
    expect(foreign.status).toBe(403)
    expect((await problemOf(foreign)).detail).toContain('https://evil.example')
    const own = await TestSocket.open(wsUrl(url), { 'x-api-key': key, origin: url })
    await own.sync()
    own.close()
  })

  test('a plain GET (no Upgrade) is 426', async () => {
    await using t = await sensorApp()
    const response = await t.request('/v1/sensors/ws', { key: await t.key() })
    expect(response.status).toBe(426)
    expect(response.headers.get('upgrade')).toBe('websocket')
    expect(await problemOf(response)).toEqual({ type: 'about:blank', title: 'Upgrade Required', status: 426, detail: expect.any(String) })
  })

  test('the typed Eden client subscribes with a ticket', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const feed = await openSensorFeed(createClient(url, { apiKey: await t.key() }))
    const received: unknown[] = []
    const arrivals = [Promise.withResolvers<void>(), Promise.withResolvers<void>()]
    feed.subscribe(({ data }) => {
      received.push(data)
      arrivals[received.length - 1]?.resolve()
    })
    await new Promise((resolve) => feed.on('open', resolve))
    feed.send({ op: 'subscribe', topic: 'sensors/eden' })
    await arrivals[0]!.promise
    t.feed.hub.publish('sensors/eden', { via: 'hub' })
    await arrivals[1]!.promise
    expect(received).toEqual([
      { op: 'subscribed', topic: 'sensors/eden', epoch: expect.any(String), recovered: true },
      // Eden turns date-time strings of socket messages into Dates.
      reading('sensors/eden', 1, { via: 'hub' }, expect.any(Date)),
    ])
    feed.close()
  })
})

describe('fan-out', () => {
  test('50 subscribers on 3 topics each get exactly the readings of their topics, in order', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const topics = ['sensors/fan-a', 'sensors/fan-b', 'sensors/fan-c']
    // Subscriber i follows topic i % 3, and every fifth one also follows fan-c.
    const subscribers = await Promise.all(Array.from({ length: 50 }, () => keySocket(url, key)))
    const follows = subscribers.map((_, i) => [...new Set([topics[i % 3]!, ...(i % 5 === 0 ? [topics[2]!] : [])])])
    subscribers.forEach((socket, i) => follows[i]!.forEach((topic) => socket.send({ op: 'subscribe', topic })))
    await Promise.all(subscribers.map((socket, i) => socket.take(follows[i]!.length)))

    // Publish over HTTP and over a socket, interleaved: both paths fan out alike.
    const publisher = await keySocket(url, key)
    const perTopic = 20
    for (let n = 1; n <= perTopic; n++) {
      for (const topic of topics) {
        if (n % 2 === 0) publisher.send({ op: 'publish', topic, data: { n } })
        else expect((await t.request(`/v1/${topic}/readings`, { method: 'POST', key, json: { n } })).status).toBe(202)
      }
      // Keep the socket's publishes in step with the HTTP ones (the socket is ordered, HTTP is not behind it).
      await publisher.sync()
    }
    await Promise.all(subscribers.map((socket, i) => socket.until(() => socket.pending().length >= follows[i]!.length * perTopic)))
    await Promise.all(subscribers.map((socket) => socket.sync()))
    for (const [i, socket] of subscribers.entries()) {
      const got = socket.pending()
      expect(got.length).toBe(follows[i]!.length * perTopic)
      for (const topic of follows[i]!) {
        expect(got.filter((m) => m.topic === topic)).toEqual(Array.from({ length: perTopic }, (_, k) => reading(topic, k + 1, { n: k + 1 })))
      }
    }
    expect(t.feed.hub.published).toBe(3 * perTopic)
    expect(t.feed.hub.dropped).toBe(0)
    for (const socket of [...subscribers, publisher]) socket.close()
  })

  test('unsubscribe stops delivery; a publisher gets its own reading only when subscribed', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const socket = await keySocket(url, key)
    socket.send({ op: 'subscribe', topic: 'sensors/u' })
    await socket.next()
    socket.send({ op: 'publish', topic: 'sensors/u', data: { n: 1 } })
    expect(await socket.next()).toEqual(reading('sensors/u', 1, { n: 1 }))
    socket.send({ op: 'unsubscribe', topic: 'sensors/u' })
    socket.send({ op: 'publish', topic: 'sensors/u', data: { n: 2 } })
    await socket.sync()
    expect(socket.pending()).toEqual([])
    expect(t.feed.hub.published).toBe(2)
    socket.close()
  })
})

describe('replay', () => {
  test('since replays the gap; no reading is lost or repeated while publishing goes on', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const topic = 'sensors/seam'
    const publisher = await keySocket(url, key)
    for (let n = 1; n <= 20; n++) publisher.send({ op: 'publish', topic, data: { n } })
    await publisher.sync()
    // Publish on every turn of the event loop (the server shares it) while the subscription is handled.
    let n = 20
    let publishing = true
    const pump = () => {
      if (!publishing) return
      t.feed.hub.publish(topic, { n: ++n })
      setImmediate(pump)
    }
    const subscriber = await keySocket(url, key)
    pump()
    subscriber.send({ op: 'subscribe', topic, since: 10 })
    expect(await subscriber.next()).toEqual({ op: 'subscribed', topic, epoch: expect.any(String), recovered: true })
    await subscriber.until(() => subscriber.pending().length >= 200)
    publishing = false
    await subscriber.sync()
    const seqs = subscriber.pending().map((m) => m.seq as number)
    expect(seqs).toEqual(Array.from({ length: n - 10 }, (_, i) => i + 11))
    expect(subscriber.pending().map((m) => (m.data as { n: number }).n)).toEqual(seqs)
    publisher.close()
    subscriber.close()
  })

  test('reconnecting with since and epoch resumes exactly after the last reading seen', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const topic = 'sensors/resume'
    const first = await keySocket(url, key)
    first.send({ op: 'subscribe', topic })
    const { epoch } = (await first.next()) as { epoch: string }
    for (let n = 1; n <= 5; n++) t.feed.hub.publish(topic, { n })
    const seen = await first.take(5)
    first.close()
    await first.closed
    for (let n = 6; n <= 8; n++) t.feed.hub.publish(topic, { n })
    const again = await keySocket(url, key)
    again.send({ op: 'subscribe', topic, since: seen.at(-1)!.seq, epoch })
    expect(await again.take(4)).toEqual([
      { op: 'subscribed', topic, epoch, recovered: true },
      reading(topic, 6, { n: 6 }), reading(topic, 7, { n: 7 }), reading(topic, 8, { n: 8 }),
    ])
    t.feed.hub.publish(topic, { n: 9 })
    expect(await again.next()).toEqual(reading(topic, 9, { n: 9 }))
    again.close()
  })

  test('recovered is false, and nothing is replayed, when the history cannot serve since', async () => {
    await using t = await sensorApp({ historySize: 5 })
    const url = t.listen()
    const key = await t.key()
    const topic = 'sensors/lost'
    for (let n = 1; n <= 10; n++) t.feed.hub.publish(topic, { n })
    const epoch = (await t.feed.hub.readings(topic, 0, 1)).epoch!
    const socket = await keySocket(url, key)
    const cases: Array<[Record<string, unknown>, boolean]> = [
      [{ since: 2, epoch }, false], // older than the 5 kept
      [{ since: 8, epoch: 'an-epoch-from-before-a-restart' }, false],
      [{ since: 11, epoch }, false], // ahead of the topic
      [{}, true], // no since: nothing to replay
      [{ since: 5, epoch }, true],
    ]
    for (const [resume, recovered] of cases) {
      socket.send({ op: 'subscribe', topic, ...resume })
      expect(await socket.next()).toEqual({ op: 'subscribed', topic, epoch, recovered })
    }
    expect(await socket.take(5)).toEqual([6, 7, 8, 9, 10].map((n) => reading(topic, n, { n })))
    await socket.sync()
    expect(socket.pending()).toEqual([])
    socket.close()
  })

  test('a subscribed topic whose history is evicted tells its subscribers: new epoch, recovered false', async () => {
    await using t = await sensorApp({ maxTopics: 1 })
    const url = t.listen()
    const socket = await keySocket(url, await t.key())
    socket.send({ op: 'subscribe', topic: 'sensors/keep' })
    const { epoch } = (await socket.next()) as { epoch: string }
    t.feed.hub.publish('sensors/keep', { n: 1 })
    expect(await socket.next()).toEqual(reading('sensors/keep', 1, { n: 1 }))
    t.feed.hub.publish('sensors/other', { n: 1 }) // evicts sensors/keep
    t.feed.hub.publish('sensors/keep', { n: 2 })
    const [notice, next] = await socket.take(2)
    expect(notice).toEqual({ op: 'subscribed', topic: 'sensors/keep', epoch: expect.any(String), recovered: false })
    expect(notice!.epoch).not.toBe(epoch)
    expect(next).toEqual(reading('sensors/keep', 1, { n: 2 }))
    socket.close()
  })
})

describe('bad messages get an error and leave the socket open', () => {
  test.each([
    ['not JSON', '{bad', 'bad_json'],
    ['an array', '[1,2]', 'bad_json'],
    ['a number', '42', 'bad_json'],
    ['null', 'null', 'bad_json'],
    ['no op', '{}', 'unknown_op'],
    ['an unknown op', '{"op":"explode"}', 'unknown_op'],
    ['no topic', '{"op":"subscribe"}', 'bad_topic'],
    ['a bad topic', '{"op":"subscribe","topic":"temperature"}', 'bad_topic'],
    ['a bad sensor id', '{"op":"subscribe","topic":"sensors/a b"}', 'bad_topic'],
    ['a long sensor id', `{"op":"subscribe","topic":"sensors/${'x'.repeat(65)}"}`, 'bad_topic'],
    ['a negative since', '{"op":"subscribe","topic":"sensors/a","since":-1}', 'bad_request'],
    ['a fractional since', '{"op":"subscribe","topic":"sensors/a","since":1.5}', 'bad_request'],
    ['a numeric epoch', '{"op":"subscribe","topic":"sensors/a","since":1,"epoch":5}', 'bad_request'],
    ['unsubscribe without topic', '{"op":"unsubscribe"}', 'bad_topic'],
    ['publish without data', '{"op":"publish","topic":"sensors/a"}', 'bad_data'],
    ['publish of an array', '{"op":"publish","topic":"sensors/a","data":[1]}', 'bad_data'],
    ['publish of a string', '{"op":"publish","topic":"sensors/a","data":"x"}', 'bad_data'],
    ['publish over 16 KiB', JSON.stringify({ op: 'publish', topic: 'sensors/a', data: { v: 'x'.repeat(16 * 1024) } }), 'bad_data'],
  ])('%s', async (_, text, code) => {
    await using t = await sensorApp()
    const socket = await keySocket(t.listen(), await t.key())
    socket.send(text)
    expect(await socket.next()).toEqual({ op: 'error', code, message: expect.any(String) })
    socket.send({ op: 'ping' })
    expect(await socket.next()).toEqual({ op: 'pong' })
    expect(t.feed.hub.published).toBe(0)
    socket.close()
  })

  test('a binary frame', async () => {
    await using t = await sensorApp()
    const socket = await keySocket(t.listen(), await t.key())
    socket.ws.send(new Uint8Array([123, 125]))
    expect(await socket.next()).toEqual({ op: 'error', code: 'bad_json', message: 'a message must be a JSON object in a text frame' })
    socket.close()
  })

  test('more than 100 subscriptions on one connection', async () => {
    await using t = await sensorApp()
    const socket = await keySocket(t.listen(), await t.key())
    for (let i = 0; i < 100; i++) socket.send({ op: 'subscribe', topic: `sensors/s${i}` })
    await socket.take(100)
    socket.send({ op: 'subscribe', topic: 'sensors/s0' })
    expect((await socket.next()).op).toBe('subscribed')
    socket.send({ op: 'subscribe', topic: 'sensors/one-too-many' })
    expect(await socket.next()).toEqual({ op: 'error', code: 'too_many_subscriptions', message: expect.any(String) })
    socket.close()
  }, 10_000)
})

describe('limits', () => {
  test('a message of 64 KiB is read; one byte more closes the socket with 1009', async () => {
    await using t = await sensorApp()
    const socket = await keySocket(t.listen(), await t.key())
    socket.send('x'.repeat(64 * 1024))
    expect(await socket.next()).toEqual({ op: 'error', code: 'bad_json', message: expect.any(String) })
    socket.send('x'.repeat(64 * 1024 + 1))
    expect(await socket.closed).toEqual({ code: 1009, reason: expect.any(String) })
  })

  test('past the message rate a message is refused; a client that keeps on is closed with 1008', async () => {
    let now = T0
    await using t = await sensorApp({ now: () => now, socketLimits: { rate: 2, burst: 3 } })
    const socket = await keySocket(t.listen(), await t.key())
    for (let i = 0; i < 3; i++) socket.send({ op: 'ping' })
    expect(await socket.take(3)).toEqual([{ op: 'pong' }, { op: 'pong' }, { op: 'pong' }])
    socket.send({ op: 'ping' })
    expect(await socket.next()).toEqual({ op: 'error', code: 'rate_limited', message: 'at most 2 messages per second (burst 3); this one was ignored' })
    now += 500 // one token back
    socket.send({ op: 'ping' })
    expect(await socket.next()).toEqual({ op: 'pong' })
    for (let i = 0; i < 3; i++) socket.send({ op: 'ping' })
    expect((await socket.take(3)).map((m) => m.code)).toEqual(['rate_limited', 'rate_limited', 'rate_limited'])
    socket.send({ op: 'ping' })
    expect(await socket.closed).toEqual({ code: 1008, reason: 'message rate limit exceeded' })
    expect(t.feed.hub.rateLimited).toBe(5)
  })

  test('with the rate limit off (RATE_LIMIT=off) nothing is refused', async () => {
    await using t = await sensorApp({ socketLimits: { rate: Infinity, burst: Infinity } })
    const socket = await keySocket(t.listen(), await t.key())
    for (let i = 0; i < 500; i++) socket.send({ op: 'ping' })
    expect(new Set((await socket.take(500)).map((m) => m.op))).toEqual(new Set(['pong']))
    expect(t.feed.hub.rateLimited).toBe(0)
    socket.close()
  })
})

/** A WebSocket client done by hand over TCP, which stops reading whenever the test says. */
async function rawClient(url: string, key: string) {
  const { hostname, port } = new URL(url)
  let buffer = Buffer.alloc(0)
  let waiters: Array<() => void> = []
  const upgraded = Promise.withResolvers<void>()
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_, chunk) {
        buffer = Buffer.concat([buffer, chunk])
        if (buffer.includes('\r\n\r\n')) upgraded.resolve()
        const woken = waiters
        waiters = []
        for (const wake of woken) wake()
      },
    },
  })
  socket.write(`GET /v1/sensors/ws HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: ${key}\r\n\r\n`)
  await upgraded.promise
  expect(buffer.toString().split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols')
  /** Frames received so far (unmasked server frames): text payloads and the close code, if any. */
  const frames = () => {
    const out: Array<{ text?: string; close?: number }> = []
    let offset = buffer.indexOf('\r\n\r\n') + 4
    while (offset + 2 <= buffer.length) {
      const opcode = buffer[offset]! & 0x0f
      let length = buffer[offset + 1]! & 0x7f
      let header = 2
      if (length === 126) [length, header] = [buffer.readUInt16BE(offset + 2), 4]
      else if (length === 127) [length, header] = [Number(buffer.readBigUInt64BE(offset + 2)), 10]
      if (offset + header + length > buffer.length) break
      const payload = buffer.subarray(offset + header, offset + header + length)
      out.push(opcode === 8 ? { close: payload.readUInt16BE(0) } : { text: payload.toString() })
      offset += header + length
    }
    return out
  }
  return {
    socket,
    frames,
    /** A client frame must be masked; a zero mask keeps the payload as is. */
    send(text: string) {
      const payload = Buffer.from(text)
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]))
    },
    /** Resolves once `condition()` holds, checked whenever data arrives. */
    async until(condition: () => boolean) {
      while (!condition()) {
        const { promise, resolve } = Promise.withResolvers<void>()
        waiters.push(resolve)
        await promise
      }
    },
  }
}

describe('slow consumers', () => {
  test('a reader that stalls is closed with 1013 after what was queued; the others get everything', async () => {
    await using t = await sensorApp({ backpressureLimit: 64 * 1024 })
    const url = t.listen()
    const key = await t.key()
    const topic = 'sensors/firehose'
    const healthy = await keySocket(url, key)
    healthy.send({ op: 'subscribe', topic })
    await healthy.next()
    const stalled = await rawClient(url, key)
    stalled.send(JSON.stringify({ op: 'subscribe', topic }))
    await stalled.until(() => stalled.frames().length === 1)
    stalled.socket.pause()

    // Publish until the hub gives up on the stalled reader (the kernel buffers a few MB first).
    const data = { blob: 'x'.repeat(4000) }
    let published = 0
    while (t.feed.hub.slowConsumerCloses === 0) {
      expect(published).toBeLessThan(50_000)
      t.feed.hub.publish(topic, data)
      published++
      // Let the healthy client read as it goes.
      if (published % 16 === 0) await healthy.until(() => healthy.pending().length >= published - 16)
    }
    for (let i = 0; i < 10; i++) t.feed.hub.publish(topic, data)
    published += 10
    await healthy.until(() => healthy.pending().length >= published)
    expect(healthy.pending().map((m) => m.seq)).toEqual(Array.from({ length: published }, (_, i) => i + 1))
    expect(t.feed.hub.dropped).toBe(1)
    expect(t.feed.hub.connections).toBe(1)

    // Reading again, the stalled client finds every reading up to the drop, in order, then 1013.
    stalled.socket.resume()
    await stalled.until(() => stalled.frames().at(-1)?.close !== undefined)
    const frames = stalled.frames()
    const seqs = frames.slice(1, -1).map((f) => (JSON.parse(f.text!) as { seq: number }).seq)
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
    expect(seqs.length).toBeLessThan(published)
    expect(frames.at(-1)).toEqual({ close: 1013 })
    healthy.close()
  }, 30_000)
})

describe('shutdown', () => {
  test('in process: every socket is closed with 1001 and new upgrades are refused with 503', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const sockets = await Promise.all([keySocket(url, key), keySocket(url, key), keySocket(url, key)])
    t.feed.hub.shutdown()
    for (const socket of sockets) expect(await socket.closed).toEqual({ code: 1001, reason: 'server shutting down' })
    const refused = await upgradeRequest(url, '', { 'x-api-key': key })
    expect(refused.status).toBe(503)
    await problemOf(refused)
    expect(t.feed.hub.connections).toBe(0)
  })

  test('SIGTERM closes the sockets with 1001; SIMULATOR=on publishes 20–30 °C temperatures', async () => {
    const dir = tempDir()
    const databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'sim')
    await using server = await startServer({ DATABASE_URL: databaseUrl, SIMULATOR: 'on', MODELS_DIR: join(dir, 'models') })
    const list = await fetch(`${server.url}/v1/sensors`, { headers: { 'x-api-key': key } })
    const { items } = (await list.json()) as { items: Array<{ sensor_id: string; last: { data: { temperature?: number } } }> }
    expect(items.map((i) => i.sensor_id)).toContain('temperature-1')
    const celsius = items.find((i) => i.sensor_id === 'temperature-1')!.last.data.temperature!
    expect(celsius).toBeGreaterThanOrEqual(20)
    expect(celsius).toBeLessThanOrEqual(30)
    const sockets = await Promise.all([keySocket(server.url, key), keySocket(server.url, key)])
    sockets[0]!.send({ op: 'subscribe', topic: 'sensors/temperature-1' })
    expect(await sockets[0]!.next()).toEqual({ op: 'subscribed', topic: 'sensors/temperature-1', epoch: expect.any(String), recovered: true })
    server.proc.kill('SIGTERM')
    for (const socket of sockets) expect((await socket.closed).code).toBe(1001)
    expect(await server.proc.exited).toBe(0)
  }, 30_000)
})

