import { describe, expect, test } from 'bun:test'
import { problemOf, testApp, type TestApp } from './helpers'

type Task = { id: number; title: string; priority: string; due_date: string | null; completed: boolean; created_at: string }
type Page = { items: Task[]; next_cursor: string | null }

async function seed(t: TestApp, key: string, specs: Array<Record<string, unknown>>): Promise<Task[]> {
  const created: Task[] = []
  for (const json of specs) {
    const response = await t.request('/v1/tasks', { method: 'POST', key, json })
    expect(response.status).toBe(201)
    created.push((await response.json()) as Task)
  }
  return created
}

async function page(t: TestApp, key: string, query: string): Promise<Page> {
  const response = await t.request(`/v1/tasks?${query}`, { key })
  expect(response.status).toBe(200)
  return (await response.json()) as Page
}

/** Follows next_cursor to the end and returns every id in order. */
async function walk(t: TestApp, key: string, query: string): Promise<number[]> {
  const ids: number[] = []
  let cursor: string | null = null
  for (let pages = 0; pages < 100; pages++) {
    const result: Page = await page(t, key, `${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
    ids.push(...result.items.map((task) => task.id))
    cursor = result.next_cursor
    if (!cursor) return ids
  }
  throw new Error('pagination did not end')
}

const rank = { low: 0, normal: 1, high: 2, urgent: 3 } as Record<string, number>

describe('GET /v1/tasks pagination and sort', () => {
  const specs = Array.from({ length: 23 }, (_, i) => ({
    title: `task ${i}`,
    priority: ['low', 'normal', 'high', 'urgent'][i % 4],
    due_date: i % 3 === 0 ? null : `2030-01-${String((i % 7) + 1).padStart(2, '0')}`,
    completed: i % 2 === 0,
  }))

  test('defaults: 20 items, newest first, then a cursor to the rest', async () => {
    await using t = await testApp()
    const key = await t.key()
    const tasks = await seed(t, key, specs)
    const first = await page(t, key, '')
    expect(first.items.length).toBe(20)
    expect(first.next_cursor).toEqual(expect.any(String))
    const expected = [...tasks].sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id - a.id).map((task) => task.id)
    expect(await walk(t, key, 'limit=20')).toEqual(expected)
  })

  test.each([
    ['created_at', (a: Task, b: Task) => a.created_at.localeCompare(b.created_at) || a.id - b.id],
    ['-created_at', (a: Task, b: Task) => b.created_at.localeCompare(a.created_at) || b.id - a.id],
    ['priority', (a: Task, b: Task) => rank[a.priority]! - rank[b.priority]! || a.id - b.id],
    ['-priority', (a: Task, b: Task) => rank[b.priority]! - rank[a.priority]! || b.id - a.id],
    ['due_date', (a: Task, b: Task) => (a.due_date === null ? 1 : 0) - (b.due_date === null ? 1 : 0) || (a.due_date ?? '').localeCompare(b.due_date ?? '') || a.id - b.id],
    ['-due_date', (a: Task, b: Task) => (a.due_date === null ? 1 : 0) - (b.due_date === null ? 1 : 0) || (b.due_date ?? '').localeCompare(a.due_date ?? '') || b.id - a.id],
  ])('sort=%s walks every task once in order across pages', async (sort, compare) => {
    await using t = await testApp()
    const key = await t.key()
    const tasks = await seed(t, key, specs)
    const expected = [...tasks].sort(compare).map((task) => task.id)
    for (const limit of [1, 4, 100]) {
      expect(await walk(t, key, `sort=${sort}&limit=${limit}`)).toEqual(expected)
    }
  })

  test('filters combine with pagination', async () => {
    await using t = await testApp()
    const key = await t.key()
    const tasks = await seed(t, key, specs)
    const expected = tasks
      .filter((task) => task.completed && task.priority === 'high' && task.due_date !== null && task.due_date > '2030-01-01' && task.due_date < '2030-01-07')
      .sort((a, b) => a.id - b.id)
      .map((task) => task.id)
    expect(expected.length).toBeGreaterThan(0)
    const ids = await walk(t, key, 'completed=true&priority=high&due_after=2030-01-01&due_before=2030-01-07&sort=created_at&limit=1')
    expect(ids).toEqual(expected)
  })

  test('completed=false and due filters exclude tasks without a due date', async () => {
    await using t = await testApp()
    const key = await t.key()
    const tasks = await seed(t, key, specs)
    const open = await walk(t, key, 'completed=false&sort=created_at')
    expect(open).toEqual(tasks.filter((task) => !task.completed).map((task) => task.id))
    const dueAfter = await walk(t, key, 'due_after=2000-01-01&sort=created_at')
    expect(dueAfter).toEqual(tasks.filter((task) => task.due_date !== null).map((task) => task.id))
  })
})

describe('GET /v1/tasks search', () => {
  test('q is a case-insensitive substring with % and _ taken literally', async () => {
    await using t = await testApp()
    const key = await t.key()
    const tasks = await seed(t, key, [
      { title: '100% done' }, { title: '100 percent' }, { title: 'snake_case' }, { title: 'snakeXcase' },
      { title: 'ÉCOLE Straße' }, { title: "it's" },
    ])
    const titles = async (q: string) => (await page(t, key, `q=${encodeURIComponent(q)}&sort=created_at`)).items.map((task) => task.title)
    expect(await titles('%')).toEqual(['100% done'])
    expect(await titles('0%')).toEqual(['100% done'])
    expect(await titles('_')).toEqual(['snake_case'])
    expect(await titles('école')).toEqual(['ÉCOLE Straße'])
    expect(await titles('STRASSE')).toEqual([])
    expect(await titles('straße')).toEqual(['ÉCOLE Straße'])
    expect(await titles("'")).toEqual(["it's"])
    expect(await titles('SNAKE')).toEqual(['snake_case', 'snakeXcase'])
    expect(tasks.length).toBe(6)
  })
})

describe('GET /v1/tasks validation', () => {
  test.each([
    ['limit=0', 'query.limit'], ['limit=101', 'query.limit'], ['limit=abc', 'query.limit'], ['limit=1.5', 'query.limit'],
    ['completed=yes', 'query.completed'], ['priority=top', 'query.priority'], ['sort=title', 'query.sort'],
    ['due_before=2030-02-30', 'query.due_before'], ['due_after=tomorrow', 'query.due_after'],
    ['cursor=garbage', 'query.cursor'], ['unknown=1', 'query.unknown'], [`q=${'x'.repeat(201)}`, 'query.q'],
  ])('%s is 422 naming %s', async (query, field) => {
    await using t = await testApp()
    const key = await t.key()
    const response = await t.request(`/v1/tasks?${query}`, { key })
    expect(response.status).toBe(422)
    expect((await problemOf(response)).errors?.map((e) => e.field)).toContain(field)
  })

  test('a cursor from another sort is 422', async () => {
    await using t = await testApp()
    const key = await t.key()
    await seed(t, key, [{ title: 'a' }, { title: 'b' }])
    const first = await page(t, key, 'limit=1&sort=priority')
    const response = await t.request(`/v1/tasks?limit=1&sort=created_at&cursor=${first.next_cursor}`, { key })
    expect(response.status).toBe(422)
  })
})
