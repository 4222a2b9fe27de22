import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { tempDir } from './helpers'
import { cliKey, startServer } from './server'

describe('SERVICES', () => {
  test.each([
    ['tasks', { tasks: 200, sensors: 404, models: 404 }],
    ['sensors', { tasks: 404, sensors: 200, models: 404 }],
    ['inference', { tasks: 404, sensors: 404, models: 200 }],
    ['tasks,inference', { tasks: 200, sensors: 404, models: 200 }],
  ] as const)('SERVICES=%s serves only those features, plus health, metrics and docs', async (services, expected) => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'ola')
    await using server = await startServer({ DATABASE_URL: databaseUrl, SERVICES: services })
    const status = async (path: string) => (await fetch(`${server.url}${path}`, { headers: { 'x-api-key': key } })).status
    expect({ tasks: await status('/v1/tasks'), sensors: await status('/v1/sensors'), models: await status('/v1/models') }).toEqual(expected)
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']) expect(await status(path)).toBe(200)
  })
})
