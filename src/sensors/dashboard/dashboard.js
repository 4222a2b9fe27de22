// The live sensor dashboard. No build step: a plain module, loaded under a CSP that
// allows only this service. The API key stays in sessionStorage; the socket opens
// with a one-use ticket, resumes with since/epoch after a drop, and reloads a
// sensor's history when the server says it could not replay it (recovered: false).
/* global uPlot */

const KEY = 'taskmesh.apiKey'
const POINTS = 300
const DISCOVER_MS = 3000
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2']

const $ = (id) => document.getElementById(id)
const sensors = new Map() // sensor_id → state
let socket = null
let attempt = 0
let reconnectTimer = null
let discoverTimer = null
let replayCount = null // readings counted between (re)subscribing and the pong after it
let running = false

// --- small helpers ---------------------------------------------------------------

function setConnection(state, text) {
  $('connection').dataset.state = state
  $('connection-text').textContent = text
}

function log(text) {
  $('log').textContent = `${new Date().toLocaleTimeString()} · ${text}`
}

async function api(path, init = {}) {
  const key = sessionStorage.getItem(KEY)
  const response = await fetch(path, { ...init, headers: { 'x-api-key': key ?? '', ...(init.headers ?? {}) } })
  if (response.status === 401 || response.status === 403) {
    const problem = await response.json().catch(() => ({}))
    throw Object.assign(new Error(problem.detail ?? `refused (${response.status})`), { auth: true })
  }
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${path} answered ${response.status}`)
  return response.json()
}

function formatValue(value) {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/\.?0+$/, '')
  if (typeof value === 'string') return value
  return JSON.stringify(value)
}

// --- sensors -----------------------------------------------------------------------

function sensorState(id) {
  let state = sensors.get(id)
  if (state) return state
  const card = $('sensor-card').content.firstElementChild.cloneNode(true)
  card.dataset.sensor = id
  card.querySelector('.name').textContent = id
  $('sensors').append(card)
  $('empty').hidden = true
  state = { id, topic: `sensors/${id}`, epoch: null, lastSeq: 0, points: [], fields: [], chart: null, card, subscribed: false }
  sensors.set(id, state)
  return state
}

/** Adds readings (any order, duplicates ignored) and redraws once. */
function addReadings(state, readings) {
  let changed = false
  for (const reading of readings) {
    const point = { seq: reading.seq, t: Date.parse(reading.ts) / 1000, data: reading.data }
    const last = state.points.at(-1)
    if (!last || point.seq > last.seq) {
      state.points.push(point)
    } else {
      const index = state.points.findIndex((p) => p.seq >= point.seq)
      if (state.points[index].seq === point.seq) continue
      state.points.splice(index, 0, point)
    }
    changed = true
  }
  if (!changed) return
  if (state.points.length > POINTS) state.points.splice(0, state.points.length - POINTS)
  const newest = state.points.at(-1)
  state.lastSeq = Math.max(state.lastSeq, newest.seq)
  render(state, newest)
}

function render(state, newest) {
  const { card } = state
  card.querySelector('.seq').textContent = `seq ${newest.seq}`
  card.querySelector('.time').textContent = new Date(newest.t * 1000).toLocaleString()
  card.dataset.points = String(state.points.length)
  card.dataset.seq = String(newest.seq)
  const values = card.querySelector('.values')
  values.replaceChildren(...Object.entries(newest.data).map(([name, value]) => {
    const row = document.createElement('div')
    const dt = document.createElement('dt')
    const dd = document.createElement('dd')
    dt.textContent = name
    dd.textContent = formatValue(value)
    dd.dataset.field = name
    if (typeof value !== 'number') dd.className = 'text'
    row.append(dt, dd)
    return row
  }))
  drawChart(state)
}

function numericFields(points) {
  const fields = new Set()
  for (const point of points) for (const [name, value] of Object.entries(point.data)) if (typeof value === 'number') fields.add(name)
  return [...fields].slice(0, COLORS.length)
}

function drawChart(state) {
  const fields = numericFields(state.points)
  const target = state.card.querySelector('.chart')
  if (fields.length === 0) return
  const data = [state.points.map((p) => p.t), ...fields.map((f) => state.points.map((p) => (typeof p.data[f] === 'number' ? p.data[f] : null)))]
  if (state.chart && fields.join() === state.fields.join()) {
    state.chart.setData(data)
    return
  }
  state.chart?.destroy()
  state.fields = fields
  const width = Math.max(300, target.clientWidth || state.card.clientWidth - 32)
  state.chart = new uPlot({
    width,
    height: 180,
    legend: { show: fields.length > 1, live: false },
    // A single point (or readings within one second) still gets a readable minute of axis.
    scales: { x: { time: true, range: (u, min, max) => (max - min < 1 ? [min - 30, max + 30] : [min, max]) } },
    series: [{}, ...fields.map((name, i) => ({ label: name, stroke: COLORS[i], width: 2, spanGaps: true }))],
    axes: [{ stroke: '#5f6b7a' }, { stroke: '#5f6b7a', size: 56 }],
  }, data, target)
}

/** The newest readings of a sensor over HTTP (to show a history, or after the server lost ours). */
async function loadHistory(state) {
  const { items } = await api('/v1/sensors')
  const item = items.find((i) => i.sensor_id === state.id)
  if (!item) return
  const since = Math.max(0, item.last.seq - POINTS)
  const page = await api(`/v1/sensors/${encodeURIComponent(state.id)}/readings?since=${since}&limit=${POINTS}`)
  if (state.epoch !== null && page.epoch !== state.epoch) return // history changed again meanwhile; the next subscribed says so
  state.epoch = page.epoch
  addReadings(state, page.items)
}

/** Finds sensors that appeared since the last look; each gets its history, then a subscription. */
async function discover() {
  try {
    const { items } = await api('/v1/sensors')
    for (const item of items) {
      if (sensors.has(item.sensor_id)) continue
      const state = sensorState(item.sensor_id)
      const since = Math.max(0, item.last.seq - POINTS)
      const page = await api(`/v1/sensors/${encodeURIComponent(item.sensor_id)}/readings?since=${since}&limit=${POINTS}`)
      state.epoch = page.epoch
      addReadings(state, page.items)
      subscribe(state)
    }
  } catch (error) {
    if (error.auth) return signOut(error.message)
    log(`could not list the sensors: ${error.message}`)
  }
}

// --- socket --------------------------------------------------------------------------

function subscribe(state) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return
  const message = { op: 'subscribe', topic: state.topic }
  // Resume after what we have: the server replays the gap, or says it cannot (recovered: false).
  if (state.lastSeq > 0 || state.epoch) message.since = state.lastSeq
  if (state.epoch) message.epoch = state.epoch
  socket.send(JSON.stringify(message))
  state.subscribed = true
}

async function connect() {
  clearTimeout(reconnectTimer)
  setConnection(attempt === 0 ? 'connecting' : 'reconnecting', attempt === 0 ? 'Connecting…' : `Reconnecting (attempt ${attempt})…`)
  let ticket
  try {
    ticket = (await api('/v1/sensors/tickets', { method: 'POST' })).ticket
  } catch (error) {
    if (error.auth) return signOut(error.message)
    return scheduleReconnect(error.message)
  }
  if (!running) return
  const url = new URL('/v1/sensors/ws', location.href)
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
  url.searchParams.set('ticket', ticket)
  const ws = new WebSocket(url)
  socket = ws
  ws.onopen = () => {
    const resumed = attempt > 0
    attempt = 0
    setConnection('live', 'Live')
    replayCount = resumed ? 0 : null
    for (const state of sensors.values()) subscribe(state)
    // The pong comes after every replayed reading: count them until then.
    ws.send(JSON.stringify({ op: 'ping' }))
  }
  ws.onmessage = (event) => onMessage(JSON.parse(event.data))
  ws.onclose = (event) => {
    if (socket !== ws) return
    socket = null
    for (const state of sensors.values()) state.subscribed = false
    if (!running) return
    scheduleReconnect(`connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`)
  }
}

function scheduleReconnect(why) {
  attempt++
  const delay = Math.min(10_000, 500 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5)
  setConnection('reconnecting', `Reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`)
  log(why)
  reconnectTimer = setTimeout(connect, delay)
}

function onMessage(message) {
  if (message.op === 'pong') {
    if (replayCount !== null) log(`Reconnected: ${replayCount} missed reading(s) replayed`)
    replayCount = null
    return
  }
  if (message.op === 'error') {
    log(`server: ${message.code}: ${message.message}`)
    return
  }
  const id = (message.topic ?? '').slice('sensors/'.length)
  const state = sensors.get(id)
  if (!state) return
  if (message.op === 'subscribed') {
    if (!message.recovered) {
      // Another epoch, or too far behind: what we show may have gaps; start again from the server's history.
      log(`${id}: history could not be replayed; reloading`)
      state.points = []
      state.lastSeq = 0
      state.epoch = message.epoch
      loadHistory(state).catch((error) => log(`${id}: reload failed: ${error.message}`))
    }
    state.epoch = message.epoch
    return
  }
  if (typeof message.seq === 'number') {
    if (replayCount !== null) replayCount++
    addReadings(state, [message])
  }
}

// --- session ---------------------------------------------------------------------------

function start() {
  running = true
  $('login').hidden = true
  $('feed').hidden = false
  $('sign-out').hidden = false
  setConnection('connecting', 'Connecting…')
  discover().then(() => {
    if (running) connect()
  })
  discoverTimer = setInterval(discover, DISCOVER_MS)
}

function signOut(reason) {
  running = false
  sessionStorage.removeItem(KEY)
  clearInterval(discoverTimer)
  clearTimeout(reconnectTimer)
  socket?.close()
  socket = null
  for (const state of sensors.values()) {
    state.chart?.destroy()
    state.card.remove()
  }
  sensors.clear()
  $('empty').hidden = false
  $('feed').hidden = true
  $('sign-out').hidden = true
  $('login').hidden = false
  $('login-error').hidden = !reason
  $('login-error').textContent = reason ?? ''
  setConnection(reason ? 'error' : 'idle', 'Not connected')
  $('api-key').focus()
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault()
  const key = $('api-key').value.trim()
  if (!key) return
  sessionStorage.setItem(KEY, key)
  $('api-key').value = ''
  $('login-error').hidden = true
  start()
})
$('sign-out').addEventListener('click', () => signOut())

if (sessionStorage.getItem(KEY)) start()
else $('api-key').focus()
