// The rules of /v1/tasks over any TaskStore: defaults, merge patch, ETags,
// optimistic concurrency, idempotent creates and opaque cursors.
import { chain, type Awaitable } from '../platform/awaitable'
import { HttpError, invalid } from '../platform/errors'
import { isoTime } from '../platform/formats'
import { PRIORITIES, SORTS, type Priority, type Sort, type TaskModel } from './model'

/** The client-settable fields, resolved (no omissions). */
export interface TaskFields {
  title: string
  description: string | null
  priority: number
  dueDate: string | null
  completed: boolean
}

/** A merge patch resolved: an absent field keeps its value, a present one is the value to store. */
export type TaskChanges = Partial<TaskFields>

export interface TaskRow extends TaskFields {
  id: number
  owner: string
  createdAt: number
  updatedAt: number
  version: number
}

export interface ListFilter {
  limit: number
  sort: Sort
  completed?: boolean
  priority?: number
  dueBefore?: string
  dueAfter?: string
  /** Already lower-cased. */
  q?: string
  /** Sort key and id of the last item of the previous page. */
  after?: { key: number | string | null; id: number }
}

export interface IdempotentCreate {
  key: string
  fingerprint: string
  /** The response body to store for replays, rendered from the new row. */
  render(row: TaskRow): string
}

export type CreateResult = { row: TaskRow } | { replay: string } | { conflict: true }
export type WriteResult = TaskRow | 'missing' | 'stale'

/**
 * What the tasks feature needs from a database; SQLite and PostgreSQL implement it.
 * A write settles only once committed (the response may then be sent); writes may share a commit.
 */
export interface TaskStore {
  insert(owner: string, fields: TaskFields, now: number, idempotency?: IdempotentCreate): Awaitable<CreateResult>
  get(owner: string, id: number): Awaitable<TaskRow | undefined>
  list(owner: string, filter: ListFilter): Awaitable<TaskRow[]>
  /** Replaces the fields when the row exists and (if given) has `expectedVersion`. */
  update(owner: string, id: number, fields: TaskFields, expectedVersion: number | null, now: number): Awaitable<WriteResult>
  /** Applies `changes` in one conditional statement, under the same conditions as `update`. */
  patch(owner: string, id: number, changes: TaskChanges, expectedVersion: number | null, now: number): Awaitable<WriteResult>
  delete(owner: string, id: number, expectedVersion: number | null): Awaitable<'deleted' | 'missing' | 'stale'>
}

const rank = (priority: Priority) => PRIORITIES.indexOf(priority)

export function toTask(row: TaskRow): TaskModel.Task {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    owner: row.owner,
    priority: PRIORITIES[row.priority]!,
    due_date: row.dueDate,
    completed: row.completed,
    created_at: isoTime(row.createdAt),
    updated_at: isoTime(row.updatedAt),
    version: row.version,
  }
}

const taskOrNotFound = (row: TaskRow | undefined, id: number): TaskModel.Task => {
  if (!row) throw notFound(id)
  return toTask(row)
}

export const etagOf = (task: { id: number; version: number }) => `"${task.id}.${task.version}"`

/** The format check accepts 2024-02-30; only real calendar days pass here. */
function checkDate(field: string, value: string | null | undefined): void {
  if (value === null || value === undefined) return
  const date = new Date(`${value}T00:00:00Z`)
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value) {
    throw invalid(field, 'must be a calendar date YYYY-MM-DD')
  }
}

/**
 * Text is stored as UTF-8 on both stores, and PostgreSQL's text cannot hold U+0000: refuse that
 * and lone surrogates (which UTF-8 cannot encode) on either store, rather than fail or alter them.
 */
function checkText(field: string, value: string | null | undefined): void {
  if (value === null || value === undefined) return
  if (value.includes('\u0000')) throw invalid(field, 'must not contain the character U+0000')
  if (!value.isWellFormed()) throw invalid(field, 'must be well-formed Unicode (no lone surrogate)')
}

export function resolveInput(input: TaskModel.Input): TaskFields {
  checkText('body.title', input.title)
  checkText('body.description', input.description)
  checkDate('body.due_date', input.due_date)
  return {
    title: input.title,
    description: input.description ?? null,
    priority: rank(input.priority ?? 'normal'),
    dueDate: input.due_date ?? null,
    completed: input.completed ?? false,
  }
}

/** RFC 7396 without the current row: `null` resets a field to its default; the store merges. */
export function resolvePatch(patch: TaskModel.Patch): TaskChanges {
  checkText('body.title', patch.title)
  checkText('body.description', patch.description)
  checkDate('body.due_date', patch.due_date)
  const changes: TaskChanges = {}
  if (patch.title !== undefined) changes.title = patch.title
  if (patch.description !== undefined) changes.description = patch.description
  if (patch.priority !== undefined) changes.priority = rank(patch.priority ?? 'normal')
  if (patch.due_date !== undefined) changes.dueDate = patch.due_date
  if (patch.completed !== undefined) changes.completed = patch.completed ?? false
  return changes
}

/** Parses `If-Match` into the version it demands; null when absent or `*`. */
export function expectedVersion(ifMatch: string | null, id: number): number | null {
  if (ifMatch === null || ifMatch.trim() === '*') return null
  for (const tag of ifMatch.split(',')) {
    const match = /^\s*"(\d+)\.(\d+)"\s*$/.exec(tag)
    if (match && Number(match[1]) === id) return Number(match[2])
  }
  // A tag of another resource (or a weak one, which If-Match never matches) can never match.
  return -1
}

export function matchesNoneMatch(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null) return false
  if (ifNoneMatch.trim() === '*') return true
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

const CURSOR_VERSION = 1

export function encodeCursor(sort: Sort, row: TaskRow): string {
  const key = sort.endsWith('created_at') ? row.createdAt : sort.endsWith('priority') ? row.priority : row.dueDate
  return Buffer.from(JSON.stringify([CURSOR_VERSION, SORTS.indexOf(sort), key, row.id])).toString('base64url')
}

export function decodeCursor(cursor: string, sort: Sort): ListFilter['after'] {
  const bad = invalid('query.cursor', 'must be a next_cursor returned by a previous page with the same sort')
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw bad
  }
  if (!Array.isArray(value) || value.length !== 4) throw bad
  const [version, sortIndex, key, id] = value as unknown[]
  if (version !== CURSOR_VERSION || sortIndex !== SORTS.indexOf(sort) || !Number.isSafeInteger(id)) throw bad
  const keyOk = sort.endsWith('due_date')
    ? key === null || (typeof key === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(key))
    : Number.isSafeInteger(key)
  if (!keyOk) throw bad
  return { key: key as number | string | null, id: id as number }
}

export function toFilter(query: TaskModel.ListQuery): ListFilter {
  checkText('query.q', query.q)
  checkDate('query.due_before', query.due_before)
  checkDate('query.due_after', query.due_after)
  const sort = query.sort ?? '-created_at'
  const filter: ListFilter = { limit: query.limit ?? 20, sort }
  if (query.completed !== undefined) filter.completed = query.completed
  if (query.priority !== undefined) filter.priority = rank(query.priority)
  if (query.due_before !== undefined) filter.dueBefore = query.due_before
  if (query.due_after !== undefined) filter.dueAfter = query.due_after
  if (query.q !== undefined && query.q !== '') filter.q = query.q.toLowerCase()
  if (query.cursor !== undefined) filter.after = decodeCursor(query.cursor, sort)
  return filter
}

/** Same fields and values in any order give the same fingerprint. */
export function fingerprint(body: Record<string, unknown>): string {
  const canonical = JSON.stringify(Object.keys(body).sort().map((key) => [key, body[key]]))
  return new Bun.CryptoHasher('sha256').update(canonical).digest('hex')
}

export class TaskService {
  constructor(private readonly store: TaskStore) {}

  async create(owner: string, input: TaskModel.Input, idempotencyKey?: string): Promise<{ task: TaskModel.Task; replayed: boolean }> {
    const fields = resolveInput(input)
    const idempotency = idempotencyKey === undefined ? undefined : {
      key: idempotencyKey,
      fingerprint: fingerprint(input),
      render: (row: TaskRow) => JSON.stringify(toTask(row)),
    }
    const result = await this.store.insert(owner, fields, Date.now(), idempotency)
    if ('conflict' in result) {
      throw invalid('header.idempotency-key', 'was already used with a different request body')
    }
    if ('replay' in result) return { task: JSON.parse(result.replay) as TaskModel.Task, replayed: true }
    return { task: toTask(result.row), replayed: false }
  }

  // Reads answer in the same step when the store does (SQLite): no promise, no microtask.
  get(owner: string, id: number): Awaitable<TaskModel.Task> {
    const row = this.store.get(owner, id)
    return row instanceof Promise ? row.then((found) => taskOrNotFound(found, id)) : taskOrNotFound(row, id)
  }

  list(owner: string, query: TaskModel.ListQuery): Awaitable<TaskModel.Page> {
    const filter = toFilter(query)
    return chain(this.store.list(owner, { ...filter, limit: filter.limit + 1 }), (rows) => {
      const more = rows.length > filter.limit
      if (more) rows.pop()
      const last = rows[rows.length - 1]
      return { items: rows.map(toTask), next_cursor: more && last ? encodeCursor(filter.sort, last) : null }
    })
  }

  async replace(owner: string, id: number, input: TaskModel.Input, ifMatch: string | null): Promise<TaskModel.Task> {
    const fields = resolveInput(input)
    return this.written(id, await this.store.update(owner, id, fields, expectedVersion(ifMatch, id), Date.now()))
  }

  async patch(owner: string, id: number, patch: TaskModel.Patch, ifMatch: string | null): Promise<TaskModel.Task> {
    const changes = resolvePatch(patch)
    return this.written(id, await this.store.patch(owner, id, changes, expectedVersion(ifMatch, id), Date.now()))
  }

  async delete(owner: string, id: number, ifMatch: string | null): Promise<void> {
    const result = await this.store.delete(owner, id, expectedVersion(ifMatch, id))
    if (result === 'missing') throw notFound(id)
    if (result === 'stale') throw stale(id)
  }

  private written(id: number, result: WriteResult): TaskModel.Task {
    if (result === 'missing') throw notFound(id)
    if (result === 'stale') throw stale(id)
    return toTask(result)
  }
}

const notFound = (id: number) => new HttpError(404, `task ${id} does not exist`)
const stale = (id: number) => new HttpError(412, `task ${id} has changed since the ETag given in If-Match`)
