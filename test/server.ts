// Starts the real service (or the compiled binary) as a child process on port 0.
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export interface RunningServer {
  url: string
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Everything the process printed so far. */
  output(): string
  [Symbol.asyncDispose](): Promise<void>
}

const root = join(import.meta.dir, '..')

export async function startServer(env: Record<string, string>, command = [process.execPath, 'src/index.ts'], cwd = root): Promise<RunningServer> {
  const proc = Bun.spawn(command, {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SIMULATOR: 'off', RATE_LIMIT: 'off', LOG_LEVEL: 'info', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let output = ''
  const listening = Promise.withResolvers<string>()
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of proc.stdout) {
      output += decoder.decode(chunk, { stream: true })
      const match = /"url":"(http:\/\/[^"]+)","msg":"listening"/.exec(output)
      if (match) listening.resolve(match[1]!)
    }
    listening.reject(new Error(`server exited before listening:\n${output}`))
  })()
  void (async () => {
    const stderr = await new Response(proc.stderr).text()
    output += stderr
  })()
  const url = await listening.promise
  return {
    url,
    proc,
    output: () => output,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await proc.exited
    },
  }
}

/** Runs the keys CLI against a database and returns the raw key it printed last (shared with the bench). */
export { cliKey } from '../scripts/keys-cli'
