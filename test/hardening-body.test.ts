// Request bodies on the real service (src/index.ts as a child process): nesting limits, faults that
// must not show internals, and credentials checked before a body is read.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { Elysia } from 'elysia'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/config'
import { createLogger } from '../src/platform/logger'
import { serveOptions } from '../src/platform/serve'
import { cliKey, startServer, type RunningServer } from './server'
import { tempDir } from './helpers'

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)

/** No stack frame, server path or source line in a response body. */
function expectNoInternals(text: string) {
  expect(text).not.toMatch(/\bat .*[\\/]|\/work\/|node_modules|src\/|\.ts:\d|<html|<!doctype/i)
}

let dir: string
let databaseUrl: string
let server: RunningServer
let key: string
let reader: string

beforeAll(async () => {
  dir = tempDir()
  databaseUrl = `sqlite:${join(dir, 'app.sqlite')}`
  ;[key, reader] = [await cliKey(databaseUrl, 'dee'), await cliKey(databaseUrl, 'rae', ['tasks:read'])]
  server = await startServer({ DATABASE_URL: databaseUrl, MODELS_DIR: join(import.meta.dir, '../models') })
})

afterAll(async () => {
  await server?.[Symbol.asyncDispose]()
  rmSync(dir, { recursive: true, force: true })
})

const post = (path: string, body: string, headers: Record<string, string> = { 'x-api-key': key }) =>
  fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

describe('a JSON body nested deeper than 64 levels', () => {
  // Readings take 16 KiB at most: 5 000 levels still fit.
  const routes: Array<[path: string, depth: number, wrap: (inner: string) => string, v2: boolean]> = [
    ['/v1/tasks', 10_000, (inner) => `{"title":${inner}}`, false],
    ['/v1/sensors/deep-1/readings', 5_000, (inner) => `{"value":${inner}}`, false],
    ['/v1/predict', 10_000, (inner) => `{"model":"iris-logistic","instances":${inner}}`, false],
    ['/v1/models/iris-logistic/predict', 10_000, (inner) => `{"instances":${inner}}`, false],
    ['/v2/models/iris-logistic/infer', 10_000, (inner) => `{"inputs":${inner}}`, true],
  ]

  test.each(routes)('is a 400 before validation on POST %s, %d deep', async (path, depth, wrap, v2) => {
    const response = await post(path, wrap(nested(depth)))
    expect(response.status).toBe(400)
    const text = await response.text()
    expectNoInternals(text)
    if (v2) {
      expect(response.headers.get('content-type')).toBe('application/json')
      expect(JSON.parse(text)).toEqual({ error: 'the request body nests arrays and objects deeper than 64 levels' })
    } else {
      expect(response.headers.get('content-type')).toBe('application/problem+json')
      expect(JSON.parse(text)).toMatchObject({ status: 400, detail: 'the request body nests arrays and objects deeper than 64 levels' })
    }
  })

  test('64 levels pass to validation; brackets inside strings do not count', async () => {
    // The outer object is the first level.
    const atLimit = await post('/v1/tasks', `{"title":${nested(63)}}`)
    expect(atLimit.status).toBe(422)
    const quoted = await post('/v1/tasks', JSON.stringify({ title: 'x', description: `[{\\"${'['.repeat(500)}` }))
    expect(quoted.status).toBe(201)
    const over = await post('/v1/tasks', `{"title":${nested(64)}}`)
    expect(over.status).toBe(400)
  })

  test('a body that does not parse is answered for its depth first, then for being blank, then for its syntax', async () => {
    const broken = await post('/v1/tasks', `{"title":${'['.repeat(10_000)}`)
    expect(broken.status).toBe(400)
    expect(((await broken.json()) as { detail: string }).detail).toBe('the request body nests arrays and objects deeper than 64 levels')
    const blank = await post('/v1/tasks', ' \n\t ')
    expect(blank.status).toBe(400)
    expect(((await blank.json()) as { detail: string }).detail).toBe('the request body is empty; expected a JSON document')
    const shallow = await post('/v1/tasks', '{"title":[[1]')
    expect(shallow.status).toBe(400)
    expect(((await shallow.json()) as { detail: string }).detail).toMatch(/^the request body is not valid JSON/)
  })
})

describe('prediction bodies, read by Bun\'s own parser (nativeJson)', () => {
  const detailOf = async (response: Response) => {
    expect(response.status).toBe(400)
    const body = (await response.json()) as { detail?: string; error?: string }
    return body.detail ?? body.error
  }
  const notUtf8 = (json: string) => {
    const bytes = new TextEncoder().encode(json)
    bytes[bytes.indexOf(0x5f)] = 0xff // the first _
    return bytes as unknown as string
  }

  test.each(['/v1/models/iris-logistic/predict', '/v1/predict'])('POST %s: a name that is not UTF-8 is the 400 for invalid UTF-8, a pickle a 400 in the parser\'s words', async (path) => {
    expect(await detailOf(await post(path, notUtf8('{"features":{"a_b":1}}')))).toBe('the request body is not valid UTF-8 (or holds U+FFFD, the character that stands for bytes that are not)')
    const pickle = new Uint8Array([0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x7d, 0x94, 0x2e])
    expect(await detailOf(await post(path, pickle as unknown as string))).toStartWith('the request body is not valid JSON: JSON Parse error:')
  })

  test('the /v2 shape says the same, for a tensor name that is not UTF-8', async () => {
    const body = notUtf8(JSON.stringify({ inputs: [{ name: 'in_put', shape: [1, 4], datatype: 'FP64', data: [5.1, 3.5, 1.4, 0.2] }] }))
    expect(await detailOf(await post('/v2/models/iris-logistic/infer', body))).toBe('the request body is not valid UTF-8 (or holds U+FFFD, the character that stands for bytes that are not)')
  })

  test('other routes keep the strict reader: a pickle sent as JSON to POST /v1/tasks is a 415', async () => {
    const response = await post('/v1/tasks', new Uint8Array([0x80, 0x04, 0x95, 0x10, 0, 0, 0]) as unknown as string)
    expect(response.status).toBe(415)
  })
})

describe('faults on the real server', () => {
  test('a handler that fails unexpectedly answers problem+json 500 without stack, paths or SQL', async () => {
    const db = new Database(join(dir, 'app.sqlite'))
    db.run('ALTER TABLE tasks RENAME TO tasks_away')
    try {
      const response = await fetch(`${server.url}/v1/tasks/1`, { headers: { 'x-api-key': key } })
      expect(response.status).toBe(500)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
      const text = await response.text()
      expect(JSON.parse(text)).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'the server failed to handle the request' })
      expectNoInternals(text)
      expect(text).not.toMatch(/SELECT|sqlite/i)
    } finally {
      db.run('ALTER TABLE tasks_away RENAME TO tasks')
      db.close()
    }
  })
})

describe('the service listens as production', () => {
  test('an error that escapes the app\'s own error handler is a bare problem+json 500, never Bun\'s development page', async () => {
    const broken = new Elysia()
      .onError(() => {
        throw new Error('the error handler failed too')
      })
      .get('/', () => {
        throw new Error('a fault')
      })
      .listen(serveOptions(loadConfig({ PORT: '0', HOST: '127.0.0.1' }), createLogger('silent')))
    try {
      const response = await fetch(`http://127.0.0.1:${broken.server!.port}/`)
      expect(response.status).toBe(500)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
      const text = await response.text()
      expect(JSON.parse(text)).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'the server failed to handle the request' })
      expectNoInternals(text)
    } finally {
      await broken.stop()
    }
  })
})

/** Sends a request head (and maybe the start of a body) on a raw socket; resolves with the response head, while the body stays unsent. */
async function headOnly(request: string): Promise<string> {
  const { host, port } = new URL(server.url)
  const answered = Promise.withResolvers<string>()
  let received = ''
  const socket = await Bun.connect({
    hostname: host.split(':')[0]!,
    port: Number(port),
    socket: {
      data(_socket, chunk) {
        received += new TextDecoder().decode(chunk)
        if (received.includes('\r\n\r\n')) answered.resolve(received)
      },
      close() {
        answered.reject(new Error(`closed before answering: ${received}`))
      },
    },
  })
  socket.write(request)
  try {
    return await answered.promise
  } finally {
    socket.end()
  }
}

describe('credentials are checked before the body is read', () => {
  const head = (path: string, headers: string[]) =>
    [`POST ${path} HTTP/1.1`, `Host: ${new URL(server.url).host}`, 'Content-Type: application/json', ...headers, '', ''].join('\r\n')

  test('8 MiB declared on predict without a key: 401 while the body is still unsent', async () => {
    const response = await headOnly(head('/v1/models/iris-logistic/predict', [`Content-Length: ${8 * 1024 * 1024}`]) + '{"instances":[')
    expect(response).toStartWith('HTTP/1.1 401')
    expect(response.toLowerCase()).toContain('www-authenticate: bearer realm="taskmesh"')
  }, 10_000)

  test('an endless chunked body with a made-up key: 401 on /v1/predict, /v1/tasks and /v2', async () => {
    for (const path of ['/v1/predict', '/v1/tasks', '/v2/models/iris-logistic/infer']) {
      const response = await headOnly(head(path, ['Transfer-Encoding: chunked', `X-Api-Key: tm_Nokey123_${'s'.repeat(40)}`]) + '2\r\n{"\r\n')
      expect(response, path).toStartWith('HTTP/1.1 401')
    }
  }, 10_000)

  test('a key without the scope: 403 while the body is still unsent', async () => {
    const response = await headOnly(head('/v1/tasks', [`Content-Length: ${512 * 1024}`, `X-Api-Key: ${reader}`]) + '{"title":')
    expect(response).toStartWith('HTTP/1.1 403')
  }, 10_000)
})
