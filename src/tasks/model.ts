// Request and response schemas of /v1/tasks. Server-owned fields (id, owner,
// version, timestamps) appear only in responses.
import { Type } from '@sinclair/typebox'
import { t } from 'elysia'
import { decimal } from '../platform/decimal'

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export type Priority = (typeof PRIORITIES)[number]
export const SORTS = ['created_at', '-created_at', 'due_date', '-due_date', 'priority', '-priority'] as const
export type Sort = (typeof SORTS)[number]

const oneOfError = (values: readonly string[]) => `must be one of: ${values.join(', ')}`

// Text fields also refuse U+0000 and lone surrogates (checked in service.ts, the same on both stores).
const TEXT_RULE = 'without U+0000 or lone surrogates'
const Title = t.String({
  minLength: 1, maxLength: 200, pattern: '\\S', error: 'must be a string of 1 to 200 characters, not only spaces',
  description: `1 to 200 characters, not only spaces, ${TEXT_RULE}`,
})
const Description = t.Union([t.String({ maxLength: 5000 }), t.Null()], {
  error: 'must be a string of at most 5000 characters, or null',
  description: `At most 5000 characters, ${TEXT_RULE}, or null`,
})
const Priority = t.Union([t.Literal('low'), t.Literal('normal'), t.Literal('high'), t.Literal('urgent')], {
  error: oneOfError(PRIORITIES),
  description: 'Urgency of the task',
})
const Sort = t.Union([
  t.Literal('created_at'), t.Literal('-created_at'), t.Literal('due_date'),
  t.Literal('-due_date'), t.Literal('priority'), t.Literal('-priority'),
], { error: oneOfError(SORTS), description: 'Order; ties broken by id in the same direction; tasks without a due date last' })
const DateString = (description: string) =>
  t.String({ format: 'date', error: 'must be a calendar date YYYY-MM-DD', description, examples: ['2030-01-31'] })
const DueDate = t.Union([DateString('Day the task is due'), t.Null()], { error: 'must be a calendar date YYYY-MM-DD, or null' })
const Completed = t.Boolean({ error: 'must be true or false' })

export namespace TaskModel {
  // Type.Integer, not t.Integer: Elysia's also accepts numeric strings, which a response never holds.
  export const task = t.Object({
    id: Type.Integer(),
    title: t.String(),
    description: t.Union([t.String(), t.Null()]),
    owner: t.String(),
    priority: Priority,
    due_date: t.Union([t.String({ format: 'date' }), t.Null()]),
    completed: t.Boolean(),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
    version: Type.Integer({ minimum: 1 }),
  }, { title: 'Task' })
  export type Task = typeof task.static

  /** POST and PUT: every client field; an omitted one takes its default. */
  export const input = t.Object({
    title: Title,
    description: t.Optional(Description),
    priority: t.Optional(Priority),
    due_date: t.Optional(DueDate),
    completed: t.Optional(Completed),
  }, { additionalProperties: false, title: 'TaskInput' })
  export type Input = typeof input.static

  /** PATCH: a JSON merge patch; `null` resets a field to its default (title cannot be null). */
  export const patch = t.Object({
    title: t.Optional(Title),
    description: t.Optional(Description),
    priority: t.Optional(t.Union([Priority, t.Null()], { error: `must be one of: ${PRIORITIES.join(', ')}, or null` })),
    due_date: t.Optional(DueDate),
    completed: t.Optional(t.Union([Completed, t.Null()], { error: 'must be true, false or null' })),
  }, { additionalProperties: false, title: 'TaskPatch' })
  export type Patch = typeof patch.static

  export const listQuery = t.Object({
    limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20, error: 'must be an integer from 1 to 100' })),
    cursor: t.Optional(t.String({ maxLength: 512, description: 'Opaque: the next_cursor of the previous page', error: 'must be a next_cursor from a previous page' })),
    completed: t.Optional(t.Boolean({ error: 'must be true or false' })),
    priority: t.Optional(Priority),
    due_before: t.Optional(DateString('Only tasks due strictly before this day')),
    due_after: t.Optional(DateString('Only tasks due strictly after this day')),
    q: t.Optional(t.String({ maxLength: 200, description: `Case-insensitive substring of the title; % and _ are literal; ${TEXT_RULE}`, error: 'must be at most 200 characters' })),
    sort: t.Optional(Sort),
  }, { additionalProperties: false })
  export type ListQuery = typeof listQuery.static

  export const page = t.Object({
    items: t.Array(task),
    next_cursor: t.Union([t.String(), t.Null()]),
  }, { title: 'TaskPage' })
  export type Page = typeof page.static

  /** `id` arrives as the path's text, a plain decimal: handlers read it with Number(). */
  export const params = t.Object({
    id: decimal({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, error: 'must be a positive integer' }),
  })

  export const createHeaders = t.Object({
    'idempotency-key': t.Optional(t.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', error: 'must be 1 to 255 visible ASCII characters' })),
  })
}
