import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { needs, tempDir } from './helpers'
import { cliKey } from './server'

const root = join(import.meta.dir, '..')

async function freePort(): Promise<number> {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = server.port!
  await server.stop()
  return port
}

describe('WORKERS', () => {
  test('more than one worker without REDIS_URL is refused with a clear message', async () => {
    const proc = Bun.spawn([process.execPath, 'src/index.ts'], {
      cwd: root, env: { ...process.env, WORKERS: '2', REDIS_URL: '', PORT: '0', DATABASE_URL: `sqlite:${join(tempDir(), 'app.sqlite')}` },
      stdout: 'pipe', stderr: 'pipe',
    })
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(2)
    expect(stderr.trim()).toBe('taskmesh: WORKERS=2 needs REDIS_URL: sensor fan-out, tickets and rate limits must be shared between the processes')
  })

  test.skipIf(!needs('redis'))('two workers share the port and the SQLite file; SIGTERM stops both', async () => {
    const databaseUrl = `sqlite:${join(tempDir(), 'app.sqlite')}`
    const key = await cliKey(databaseUrl, 'wes')
    const port = await freePort()
    const proc = Bun.spawn([process.execPath, 'src/index.ts'], {
      cwd: root,
      env: { ...process.env, WORKERS: '2', REDIS_URL: 'redis://127.0.0.1:6379', PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SIMULATOR: 'off', RATE_LIMIT: 'off', LOG_LEVEL: 'info' },
      stdout: 'pipe', stderr: 'pipe',
    })
    let output = ''
    const both = Promise.withResolvers<void>()
    void (async () => {
      for await (const chunk of proc.stdout) {
        output += new TextDecoder().decode(chunk)
        if ((output.match(/"msg":"listening"/g) ?? []).length >= 2) both.resolve()
      }
    })()
    await both.promise
    const ids: number[] = []
    // Fresh connections each time, so the kernel spreads them over both listeners.
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/v1/tasks`, {
        method: 'POST', keepalive: false, headers: { 'x-api-key': key, 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ title: `t${i}` }),
      })
      expect(response.status).toBe(201)
      ids.push(((await response.json()) as { id: number }).id)
    }
    expect(new Set(ids).size).toBe(40)
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    const workers = new Set([...output.matchAll(/"worker":(\d+)[^\n]*"msg":"request"/g)].map((m) => m[1]))
    expect(workers).toEqual(new Set(['0', '1']))
  })
})
