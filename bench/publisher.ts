// The fan-out's publisher: one connection that hands readings stamped with their publish time to
// the target, `{"op":"publish"}` over WebSocket or POST /v1/sensors/{id}/readings over keep-alive
// HTTP, at a fixed rate or as fast as the slowest subscriber keeps up.
import { now, type Subscribers, TOPIC, TOPIC_ID } from './subscribers.ts'

/** One publisher connection: `post()` resolves when the reading was handed over (HTTP: answered 202). */
async function publisher(url: string, key: string | undefined, via: 'ws' | 'http') {
  let failed = 0
  if (via === 'http') {
    const endpoint = `${url}/v1/sensors/${TOPIC_ID}/readings`
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) }
    return {
      failed: () => failed,
      async post(): Promise<boolean> {
        const response = await fetch(endpoint, { method: 'POST', headers, body: `{"t":${now()}}` })
        await response.arrayBuffer()
        if (response.status === 202) return true
        failed++
        return false
      },
      close() {},
    }
  }
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/sensors/ws`, key ? { headers: { 'x-api-key': key } } : undefined)
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = () => reject(new Error('publisher socket error'))
  })
  // Errors (rate_limited, bad_data) would come back as messages; none are expected.
  ws.onmessage = (event) => {
    if (failed++ === 0) console.error(`publisher: ${String(event.data)}`)
  }
  return {
    failed: () => failed,
    async post(): Promise<boolean> {
      ws.send(`{"op":"publish","topic":"${TOPIC}","data":{"t":${now()}}}`)
      return true
    },
    close: () => ws.close(),
  }
}

/** Publishes for `durationSec`; answers how many readings went out and when publishing began (epoch ms). */
export async function publishFor(url: string, key: string | undefined, via: 'ws' | 'http', mode: 'fixed' | 'full', durationSec: number, rate: number, window: number, groups: Subscribers[]): Promise<{ published: number; startedAt: number }> {
  const connection = await publisher(url, key, via)
  let published = 0
  const post = async () => {
    if (await connection.post()) published++
  }
  const startedAt = now()
  const endAt = performance.now() + durationSec * 1000
  if (mode === 'full') {
    // Closed loop: as fast as the slowest subscriber takes readings, so neither target can
    // run ahead by queueing (a relay would otherwise buffer megabytes per socket and count
    // that as speed).
    const slowest = () => Math.min(...groups.map((g) => g.min))
    let inFlight = 0
    await new Promise<void>((done) => {
      const pump = () => {
        while (performance.now() < endAt && inFlight < window && published + inFlight - slowest() < window) {
          inFlight++
          void post().finally(() => {
            inFlight--
            pump()
          })
        }
        if (performance.now() >= endAt && inFlight === 0) done()
      }
      for (const g of groups) g.onProgress = pump
      setTimeout(pump, durationSec * 1000 + 1)
      pump()
    })
    for (const g of groups) g.onProgress = () => {}
  } else {
    const inFlight = new Set<Promise<void>>()
    const begin = performance.now()
    for (let i = 0; ; i++) {
      const due = begin + (i * 1000) / rate
      if (due >= endAt) break
      const wait = due - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      const request = post().finally(() => inFlight.delete(request))
      inFlight.add(request)
    }
    await Promise.all(inFlight)
  }
  connection.close()
  if (connection.failed() > 0) throw new Error(`${connection.failed()} publishes failed`)
  return { published, startedAt }
}
