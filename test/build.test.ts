import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { tempDir } from './helpers'
import { startServer } from './server'

const root = join(import.meta.dir, '..')

describe('single-file executable', () => {
  test('bun build --compile makes a binary that migrates, manages keys and serves', async () => {
    const dir = tempDir()
    const binary = join(dir, 'taskmesh')
    const build = Bun.spawn([process.execPath, 'run', 'build', '--outfile', binary], { cwd: root, stdout: 'pipe', stderr: 'pipe' })
    const [buildErr, buildCode] = await Promise.all([new Response(build.stderr).text(), build.exited])
    expect(buildCode, buildErr).toBe(0)

    // Run from an empty folder: nothing beside the binary (no drizzle/, no node_modules).
    const databaseUrl = `sqlite:${join(dir, 'data/app.sqlite')}`
    const keys = Bun.spawn([binary, 'keys', 'create', 'lee'], { cwd: dir, env: { ...process.env, DATABASE_URL: databaseUrl }, stdout: 'pipe' })
    const [keysOut, keysCode] = await Promise.all([new Response(keys.stdout).text(), keys.exited])
    expect(keysCode).toBe(0)
    const key = keysOut.trim().split('\n').at(-1)!

    await using server = await startServer({ DATABASE_URL: databaseUrl }, [binary], dir)
    const health = await fetch(`${server.url}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })
    const created = await fetch(`${server.url}/v1/tasks`, {
      method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: '{"title":"from the binary"}',
    })
    expect(created.status).toBe(201)
    // Its second entrypoint, the WAL checkpointer's worker (src/db/checkpointer.ts), starts inside the binary too.
    expect(server.output()).toContain('"msg":"listening"')
    expect(server.output()).not.toContain('checkpointer thread did not start')
    const docs = await fetch(`${server.url}/docs/assets/swagger-ui-bundle.js`)
    expect(docs.status).toBe(200)
    expect((await docs.arrayBuffer()).byteLength).toBeGreaterThan(100_000)
  }, 120_000)
})
