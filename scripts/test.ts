// `bun run test`: the whole suite on the embedded SQLite default, then the
// store-facing suites again on PostgreSQL. Off CI, a missing PostgreSQL skips
// the second pass with a notice instead of failing on a laptop without one.
import { SQL } from 'bun'
import { DEFAULT_POSTGRES } from './scratch-database.ts'

const postgresSuites = ['test/tasks.test.ts', 'test/tasks-list.test.ts', 'test/auth.test.ts', 'test/http.test.ts', 'test/gateway.test.ts', 'test/durability.test.ts', 'test/tasks-batching.test.ts', 'test/keys-api.test.ts']
const postgresUrl = process.env.TEST_POSTGRES_URL ?? DEFAULT_POSTGRES

async function run(args: string[], env: Record<string, string> = {}): Promise<{ passed: number; failed: number; code: number }> {
  const proc = Bun.spawn([process.execPath, 'test', ...args], { env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe' })
  let output = ''
  const pump = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      output += text
      sink.write(text)
    }
  }
  await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr), proc.exited])
  const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, 'm').exec(output)?.[1] ?? 0)
  return { passed: count('pass'), failed: count('fail'), code: proc.exitCode ?? 1 }
}

async function postgresReachable(): Promise<boolean> {
  const client = new SQL(`${postgresUrl}/postgres`, { connectionTimeout: 2, max: 1 })
  try {
    await client`SELECT 1`
    return true
  } catch {
    return false
  } finally {
    await client.close()
  }
}

const results = [await run(process.argv.slice(2))]
if (process.argv.length <= 2) {
  if (process.env.CI === 'true' || (await postgresReachable())) {
    console.log('\n== the store-facing suites again on PostgreSQL')
    results.push(await run(postgresSuites, { TEST_STORE: 'postgres' }))
  } else {
    console.log(`\nnotice: PostgreSQL is not reachable at ${postgresUrl}; skipped the PostgreSQL pass (CI runs it)`)
  }
}
const passed = results.reduce((sum, r) => sum + r.passed, 0)
const failed = results.reduce((sum, r) => sum + r.failed, 0)
console.log(`\n${passed} passed, ${failed} failed`)
process.exit(results.every((r) => r.code === 0) ? 0 : 1)
