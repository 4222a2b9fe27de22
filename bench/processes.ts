// Child processes of the bench: started pinned to a core, found by the "listening" line
// they print, and always killed — on success, on error, on Ctrl-C and on exit.
import { readdirSync, readFileSync } from 'node:fs'

const children = new Set<Bun.Subprocess>()

export function track(child: Bun.Subprocess): void {
  children.add(child)
  void child.exited.then(() => children.delete(child))
}

/** Synchronous, so it also works from process.on('exit'). */
export function killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) {
    try {
      child.kill(signal)
    } catch {
      // already gone
    }
  }
}

/** SIGTERM, then SIGKILL whatever is still alive after `graceMs`. */
export async function stopAll(graceMs = 3000): Promise<void> {
  const alive = [...children]
  killAll('SIGTERM')
  await Promise.race([Promise.all(alive.map((child) => child.exited)), Bun.sleep(graceMs)])
  killAll('SIGKILL')
}

export const hasTaskset = Bun.which('taskset') !== null

export function cores(): number {
  try {
    // Cores this process may run on (respects an outer taskset/cgroup).
    const status = readFileSync('/proc/self/status', 'utf8')
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1]
    if (list) {
      return list.split(',').reduce((sum, part) => {
        const [a, b] = part.split('-').map(Number)
        return sum + (b === undefined ? 1 : b - a! + 1)
      }, 0)
    }
  } catch {
    // not Linux
  }
  return navigator.hardwareConcurrency
}

/** Pins every thread of `pid` to `core` (taskset -a -cp). */
export function pin(pid: number, core: number): boolean {
  if (!hasTaskset) return false
  try {
    return Bun.spawnSync(['taskset', '-a', '-cp', String(core), String(pid)], { stdout: 'ignore', stderr: 'ignore' }).exitCode === 0
  } catch {
    return false
  }
}

export function pinned(argv: string[], core: number | null): string[] {
  return core !== null && hasTaskset ? ['taskset', '-c', String(core), ...argv] : argv
}

const clockTicks = (() => {
  try {
    const result = Bun.spawnSync(['getconf', 'CLK_TCK'], { stdout: 'pipe', stderr: 'ignore' })
    const ticks = Number(result.stdout.toString().trim())
    if (Number.isFinite(ticks) && ticks > 0) return ticks
  } catch {
    // no getconf
  }
  return 100 // USER_HZ on every common Linux build
})()

/** utime + stime of a process (all its threads), in seconds; NaN without /proc. */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may contain spaces; fields after it are space-separated.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** CPU seconds of a process and of its live children (a WORKERS primary does no work itself). */
export function cpuSeconds(pid: number): number {
  const own = statFields(pid)
  if (!own) return Number.NaN
  // After ")" the first field is #3 (state); ppid is #4, utime #14, stime #15.
  let ticks = Number(own[11]) + Number(own[12])
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const fields = statFields(entry)
    if (fields && Number(fields[1]) === pid) ticks += Number(fields[11]) + Number(fields[12])
  }
  return ticks / clockTicks
}

/**
 * CPU time the machine spent in processes (user, nice, system) or lost to the hypervisor (steal),
 * in seconds. Interrupt and softirq time are left out: most of it is the loopback traffic of the
 * bench itself, which the kernel does not charge to any process.
 */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const [, user, nice, system, , , , , steal] = line.trim().split(/\s+/).map(Number) as number[]
    return (user! + nice! + system! + (steal ?? 0)) / clockTicks
  } catch {
    return Number.NaN
  }
}

export interface Server {
  name: string
  url: string
  pid: number
  child: Bun.Subprocess
  /** The last few KiB of stderr, for error messages. */
  stderrTail(): string
  stop(): Promise<number>
}

/** A port that was free a moment ago (for servers that cannot report the one they got). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}

/** Polls `url` until it answers 200. */
async function waitHealthy(url: string, child: Bun.Subprocess, timeoutMs: number, tail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode} before answering ${url}\n${tail()}`)
    const ok = await fetch(url).then((r) => r.status === 200, () => false)
    if (ok) return
    await Bun.sleep(100)
  }
  throw new Error(`did not answer ${url} within ${timeoutMs} ms\n${tail()}`)
}

/**
 * Spawns a server and waits for the first stdout line containing "listening" with a
 * `"url"`; the rest of its output is drained and ignored (stderr is kept for errors).
 * With `health`, the server is told its port instead and polled at that path until 200
 * (for log levels that print no "listening" line).
 */
export async function startServer(name: string, argv: string[], options: { cwd: string; env: Record<string, string>; timeoutMs?: number; health?: string }): Promise<Server> {
  if (options.health) {
    const port = freePort()
    const child = Bun.spawn(argv, { cwd: options.cwd, env: { ...process.env, ...options.env, PORT: String(port) }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
    track(child)
    let tail = ''
    void (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of child.stderr) tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096)
    })()
    const url = `http://127.0.0.1:${port}`
    try {
      await waitHealthy(`${url}${options.health}`, child, options.timeoutMs ?? 20000, () => tail)
    } catch (error) {
      throw new Error(`${name} ${(error as Error).message}`)
    }
    return serverHandle(name, url, child, () => tail)
  }
  const child = Bun.spawn(argv, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  track(child)
  let tail = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of child.stderr) tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096)
  })()
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print "listening" within ${options.timeoutMs ?? 20000} ms\n${tail}`)), options.timeoutMs ?? 20000)
    void child.exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with code ${code} before listening\n${tail}`))
    })
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      let found = false
      for await (const chunk of child.stdout) {
        if (found) continue // drain
        buffer += decoder.decode(chunk, { stream: true })
        let newline: number
        while (!found && (newline = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (!line.includes('listening')) continue
          try {
            const parsed = JSON.parse(line) as { url?: string }
            if (parsed.url) {
              found = true
              clearTimeout(timer)
              resolve(parsed.url)
            }
          } catch {
            // not JSON; keep looking
          }
        }
        if (found) buffer = ''
      }
    })()
  })
  return serverHandle(name, url, child, () => tail)
}

function serverHandle(name: string, url: string, child: Bun.Subprocess, tail: () => string): Server {
  return {
    name,
    url,
    pid: child.pid,
    child,
    stderrTail: tail,
    async stop() {
      child.kill('SIGTERM')
      const code = await Promise.race([child.exited, Bun.sleep(5000).then(() => null)])
      if (code === null) {
        child.kill('SIGKILL')
        return child.exited
      }
      return code
    },
  }
}
