// API keys made the way a user makes them, with the keys CLI (`bun run keys create`): for the
// tests that run the real service and for the bench's owners.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dir, '..')
const keyPattern = /^tm_[A-Za-z0-9]{8}_[A-Za-z0-9]+$/

/**
 * The `keys` script of package.json (`bun src/platform/keys/cli.ts`) with this very bun binary, so it
 * works even when no `bun` is on PATH (which `bun run keys` would need).
 */
function keysCommand(): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  const words = pkg.scripts?.keys?.trim().split(/\s+/) ?? []
  if (words[0] === 'bun' && words.length > 1 && words.every((w) => /^[\w./@:=-]+$/.test(w))) return [process.execPath, ...words.slice(1)]
  return [process.execPath, 'run', 'keys']
}

const command = keysCommand()

export interface CliKeyOptions {
  /** Called with the CLI's process as soon as it starts (the bench kills it when interrupted). */
  onSpawn?(child: Bun.Subprocess): void
}

/** `keys create OWNER [--scope S]...` on `databaseUrl` (the default scopes when none); the key is the last line it prints. */
export async function cliKey(databaseUrl: string, owner: string, scopes: string[] = [], options: CliKeyOptions = {}): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const child = Bun.spawn([...command, 'create', owner, ...scopes.flatMap((scope) => ['--scope', scope])], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    options.onSpawn?.(child)
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    const key = stdout.trim().split('\n').pop()?.trim() ?? ''
    if (code === 0 && keyPattern.test(key)) return key
    // Several CLIs opening one SQLite file at once can hit SQLITE_BUSY before busy_timeout is set.
    if (attempt < 6 && /database is locked|SQLITE_BUSY/i.test(stderr)) {
      await Bun.sleep(100 * attempt)
      continue
    }
    throw new Error(`keys create ${owner} failed (exit ${code}): ${stderr.trim() || stdout.trim()}`)
  }
}
