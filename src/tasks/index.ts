// Routes of /v1/tasks: thin handlers over TaskService.
import { Elysia, t } from 'elysia'
import { auth, type Credentials } from '../platform/auth'
import type { Awaitable } from '../platform/awaitable'
import { problemResponses } from '../platform/errors'
import { routeOptions } from '../platform/route-options'
import { unchecked } from '../platform/unchecked'
import { TaskModel } from './model'
import { etagOf, matchesNoneMatch, TaskService, type TaskStore } from './service'

// Built from typed rows by toTask: documented, not re-checked per response.
const task = unchecked(TaskModel.task)
const page = unchecked(TaskModel.page)

/** A task with its ETag, or a 304 when If-None-Match already names it. */
function conditional(task: TaskModel.Task, request: Request, set: { status?: number | string; headers: Record<string, unknown> }): TaskModel.Task | undefined {
  const etag = etagOf(task)
  set.headers.etag = etag
  if (!matchesNoneMatch(request.headers.get('if-none-match'), etag)) return task
  set.status = 304
  return undefined
}

const readProblems = problemResponses(401, 403, 404, 422, 500)
const writeProblems = problemResponses(400, 401, 403, 404, 412, 413, 415, 422, 500)

export function tasks(store: TaskStore, credentials: Credentials) {
  const service = new TaskService(store)
  return new Elysia({ name: 'tasks', prefix: '/v1/tasks', tags: ['tasks'] })
    .use(auth(credentials))
    .use(routeOptions)
    .post('', async ({ body, headers, principal, set }) => {
      const { task, replayed } = await service.create(principal.owner, body, headers['idempotency-key'])
      set.status = 201
      set.headers.location = `/v1/tasks/${task.id}`
      set.headers.etag = etagOf(task)
      if (replayed) set.headers['idempotent-replayed'] = 'true'
      return task
    }, {
      auth: 'tasks:write',
      rateGroup: 'tasks',
      body: TaskModel.input,
      parse: 'json',
      headers: TaskModel.createHeaders,
      response: { 201: task, ...problemResponses(400, 401, 403, 413, 415, 422, 500) },
      detail: {
        summary: 'Create a task',
        description: 'With `Idempotency-Key`, a repeat of the same request returns the task created the first time (header `Idempotent-Replayed: true`); the same key with another body is a 422.',
      },
    })
    .get('', ({ query, principal }) => service.list(principal.owner, query), {
      auth: 'tasks:read',
      rateGroup: 'tasks',
      lean: true,
      query: TaskModel.listQuery,
      response: { 200: page, ...readProblems },
      detail: { summary: 'List your tasks', description: 'Cursor-paginated; pass `next_cursor` back as `cursor` with the same sort.' },
    })
    // Conditional headers are read off the request: asking Elysia for `headers` builds an object of all of them.
    .get('/:id', ({ params, request, principal, set }) => {
      const task = service.get(principal.owner, Number(params.id))
      // A closure only when the store answers later (PostgreSQL): a read from SQLite allocates none.
      const answer: Awaitable<TaskModel.Task | undefined> = task instanceof Promise ? task.then((found) => conditional(found, request, set)) : conditional(task, request, set)
      return answer
    }, {
      auth: 'tasks:read',
      rateGroup: 'tasks',
      lean: true,
      params: TaskModel.params,
      response: { 200: task, 304: t.Undefined({ description: 'Not modified: If-None-Match matched' }), ...readProblems },
      detail: { summary: 'Get a task', description: 'Answers 404 for a task of another owner.' },
    })
    .put('/:id', async ({ params, body, request, principal, set }) => {
      const task = await service.replace(principal.owner, Number(params.id), body, request.headers.get('if-match'))
      set.headers.etag = etagOf(task)
      return task
    }, {
      auth: 'tasks:write',
      rateGroup: 'tasks',
      params: TaskModel.params,
      body: TaskModel.input,
      parse: 'json',
      response: { 200: task, ...writeProblems },
      detail: { summary: 'Replace a task', description: 'An omitted field takes its default. Honours If-Match (412 when stale).' },
    })
    .patch('/:id', async ({ params, body, request, principal, set }) => {
      const task = await service.patch(principal.owner, Number(params.id), body, request.headers.get('if-match'))
      set.headers.etag = etagOf(task)
      return task
    }, {
      auth: 'tasks:write',
      rateGroup: 'tasks',
      params: TaskModel.params,
      body: TaskModel.patch,
      parse: 'json',
      response: { 200: task, ...writeProblems },
      detail: {
        summary: 'Update a task',
        description: 'A JSON merge patch (application/merge-patch+json or application/json); `null` resets a field to its default. Honours If-Match.',
      },
    })
    .delete('/:id', async ({ params, request, principal, set }) => {
      await service.delete(principal.owner, Number(params.id), request.headers.get('if-match'))
      set.status = 204
    }, {
      auth: 'tasks:write',
      rateGroup: 'tasks',
      params: TaskModel.params,
      response: { 204: t.Undefined({ description: 'Deleted' }), ...problemResponses(401, 403, 404, 412, 422, 500) },
      detail: { summary: 'Delete a task', description: 'Honours If-Match.' },
    })
}
