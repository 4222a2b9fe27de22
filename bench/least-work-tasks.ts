// /v1/tasks in the least-work reference: per request, the owner from a Map, one prepared statement,
// the task object with the service's field names, JSON.stringify, ETag. The same rules as the
// service where a scenario can reach them (input checks, If-Match → 412, If-None-Match → 304,
// the list's -created_at keyset cursor); Idempotency-Key, filters and other sorts are not served.
import type { Database } from 'bun:sqlite'
import { PRIORITIES } from '../src/tasks/model.ts'
import { bodyOf, json, problem } from './least-work-http.ts'

type Row = [number, string, string | null, number, string | null, number, number, number, number]
type Body = Record<string, unknown>

/** Raw API key → owner, or undefined. */
export type OwnerOf = (request: Request) => string | undefined

const COLUMNS = 'id, title, description, priority, due_date, completed, created_at, updated_at, version'
const FIELDS = new Set(['title', 'description', 'priority', 'due_date', 'completed'])
const RANKS = new Map<unknown, number>(PRIORITIES.map((label, rank) => [label, rank]))
const NORMAL = RANKS.get('normal')!
// The cursor as the service encodes it: [version 1, SORTS.indexOf('-created_at'), created_at, id].
const CURSOR_HEAD = [1, 1] as const
const TAG = /^\s*"(\d+)\.(\d+)"\s*$/

const taskOf = (r: Row, owner: string) => ({
  id: r[0], title: r[1], description: r[2], owner, priority: PRIORITIES[r[3]]!, due_date: r[4], completed: r[5] === 1,
  created_at: new Date(r[6]).toISOString(), updated_at: new Date(r[7]).toISOString(), version: r[8],
})

function isCalendarDate(value: unknown): boolean {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return false
  const year = Number(value.slice(0, 4))
  const month = Number(value.slice(5, 7))
  const day = Number(value.slice(8))
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
  return month >= 1 && month <= 12 && day >= 1 && day <= days
}

/** What is wrong with a create (`patch` false) or merge-patch body, or null; the service's schema rules. */
function invalid(body: Body, patch: boolean): string | null {
  for (const key in body) if (!FIELDS.has(key)) return `${key} is not a field of a task`
  const { title, description, priority, due_date: due, completed } = body
  if (title === undefined ? !patch : typeof title !== 'string' || title.length > 200 || !/\S/.test(title)) return 'title must be a string of 1 to 200 characters, not only spaces'
  if (description !== undefined && description !== null && (typeof description !== 'string' || description.length > 5000)) return 'description must be a string of at most 5000 characters, or null'
  if (priority !== undefined && !(patch && priority === null) && !RANKS.has(priority)) return `priority must be one of: ${PRIORITIES.join(', ')}`
  if (due !== undefined && due !== null && !isCalendarDate(due)) return 'due_date must be a calendar date YYYY-MM-DD, or null'
  if (completed !== undefined && !(patch && completed === null) && typeof completed !== 'boolean') return 'completed must be true or false'
  return null
}

/** The version `If-Match` demands (null: absent or `*`; -1: a tag of another resource), as the service reads it. */
function expectedVersion(ifMatch: string | null, id: number): number | null {
  if (ifMatch === null || ifMatch.trim() === '*') return null
  for (const tag of ifMatch.split(',')) {
    const match = TAG.exec(tag)
    if (match && Number(match[1]) === id) return Number(match[2])
  }
  return -1
}

function matchesNoneMatch(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch === etag || ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

function idOf(raw: string): number | null {
  const id = Number(raw)
  return Number.isSafeInteger(id) && id > 0 ? id : null
}

/** The `cursor` of a previous page: [created_at, id], or null when it is not one. */
function decodeCursor(cursor: string): [number, number] | null {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown
    if (!Array.isArray(value) || value.length !== 4 || value[0] !== CURSOR_HEAD[0] || value[1] !== CURSOR_HEAD[1]) return null
    return Number.isSafeInteger(value[2]) && Number.isSafeInteger(value[3]) ? [value[2] as number, value[3] as number] : null
  } catch {
    return null
  }
}

const unauthorized = () => problem(401, 'missing or unknown API key')
const notFound = (id: number | string) => problem(404, `task ${id} does not exist`)

/** The route handlers of /v1/tasks over `db`, with every statement prepared here, once. */
export function taskRoutes(db: Database, ownerOf: OwnerOf) {
  const byId = db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE id = ? AND owner = ?`)
  const versionOf = db.prepare('SELECT version FROM tasks WHERE id = ? AND owner = ?')
  const firstPage = db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT ?`)
  const laterPage = db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE owner = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`)
  const insert = db.prepare(`INSERT INTO tasks (owner, title, title_lower, description, priority, due_date, completed, created_at, updated_at, version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id`)
  // A merge patch in one statement: ?odd flags say which fields the body has; the version check is in the WHERE.
  const update = db.prepare(`UPDATE tasks SET
      title = CASE WHEN ?1 THEN ?2 ELSE title END, title_lower = CASE WHEN ?1 THEN ?3 ELSE title_lower END,
      description = CASE WHEN ?4 THEN ?5 ELSE description END, priority = CASE WHEN ?6 THEN ?7 ELSE priority END,
      due_date = CASE WHEN ?8 THEN ?9 ELSE due_date END, completed = CASE WHEN ?10 THEN ?11 ELSE completed END,
      updated_at = ?12, version = version + 1
    WHERE id = ?13 AND owner = ?14 AND (?15 IS NULL OR version = ?15)
    RETURNING ${COLUMNS}`)

  function list(request: Request): Response {
    const owner = ownerOf(request)
    if (owner === undefined) return unauthorized()
    const q = request.url.indexOf('?')
    const query = new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1))
    let limit = 20
    let after: [number, number] | null = null
    for (const [name, value] of query) {
      if (name === 'limit') {
        limit = Number(value)
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) return problem(422, 'limit must be an integer from 1 to 100')
      } else if (name === 'cursor') {
        after = decodeCursor(value)
        if (after === null) return problem(422, 'cursor must be a next_cursor returned by a previous page')
      } else {
        return problem(422, `least work serves limit and cursor only (the default sort, -created_at), not ${name}`)
      }
    }
    const rows = (after ? laterPage.values(owner, after[0], after[1], limit + 1) : firstPage.values(owner, limit + 1)) as Row[]
    const more = rows.length > limit
    if (more) rows.pop()
    const items = rows.map((row) => taskOf(row, owner))
    const last = rows[rows.length - 1]
    const next = more && last ? Buffer.from(JSON.stringify([...CURSOR_HEAD, last[6], last[0]])).toString('base64url') : null
    return json(JSON.stringify({ items, next_cursor: next }), 200)
  }

  async function create(request: Request): Promise<Response> {
    const owner = ownerOf(request)
    if (owner === undefined) return unauthorized()
    const body = await bodyOf(request)
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return problem(422, 'the body must be a JSON object')
    const wrong = invalid(body as Body, false)
    if (wrong) return problem(422, wrong)
    const { title, description = null, priority = 'normal', due_date = null, completed = false } = body as Body
    const now = Date.now()
    const rank = RANKS.get(priority)!
    const id = (insert.values(owner, title as string, (title as string).toLowerCase(), description as string | null, rank, due_date as string | null, completed ? 1 : 0, now, now)[0] as [number])[0]
    const stamp = new Date(now).toISOString()
    const task = { id, title, description, owner, priority, due_date, completed, created_at: stamp, updated_at: stamp, version: 1 }
    return json(JSON.stringify(task), 201, `"${id}.1"`, `/v1/tasks/${id}`)
  }

  function get(request: Bun.BunRequest<'/v1/tasks/:id'>): Response {
    const owner = ownerOf(request)
    if (owner === undefined) return unauthorized()
    const id = idOf(request.params.id)
    if (id === null) return problem(422, 'id must be a positive integer')
    const row = byId.values(id, owner)[0] as Row | undefined
    if (!row) return notFound(id)
    const etag = `"${id}.${row[8]}"`
    const ifNoneMatch = request.headers.get('if-none-match')
    if (ifNoneMatch !== null && matchesNoneMatch(ifNoneMatch, etag)) {
      return new Response(null, { status: 304, headers: { etag, 'x-request-id': crypto.randomUUID() } })
    }
    return json(JSON.stringify(taskOf(row, owner)), 200, etag)
  }

  async function patch(request: Bun.BunRequest<'/v1/tasks/:id'>): Promise<Response> {
    const owner = ownerOf(request)
    if (owner === undefined) return unauthorized()
    const id = idOf(request.params.id)
    if (id === null) return problem(422, 'id must be a positive integer')
    const body = await bodyOf(request)
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return problem(422, 'the body must be a JSON merge patch object')
    const b = body as Body
    const wrong = invalid(b, true)
    if (wrong) return problem(422, wrong)
    const has = (value: unknown) => (value === undefined ? 0 : 1)
    const title = b.title as string | undefined
    const row = update.values(
      has(title), title ?? null, title?.toLowerCase() ?? null,
      has(b.description), (b.description ?? null) as string | null,
      has(b.priority), b.priority === null || b.priority === undefined ? NORMAL : RANKS.get(b.priority)!,
      has(b.due_date), (b.due_date ?? null) as string | null,
      has(b.completed), b.completed ? 1 : 0,
      Date.now(), id, owner, expectedVersion(request.headers.get('if-match'), id),
    )[0] as Row | undefined
    if (!row) return versionOf.values(id, owner).length > 0 ? problem(412, `task ${id} has changed since the ETag given in If-Match`) : notFound(id)
    return json(JSON.stringify(taskOf(row, owner)), 200, `"${id}.${row[8]}"`)
  }

  return {
    '/v1/tasks': { GET: list, POST: create },
    '/v1/tasks/:id': { GET: get, PATCH: patch },
  }
}
