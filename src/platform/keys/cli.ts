// `bun run keys create|list|revoke`: manage API keys in the DATABASE_URL database.
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../../config'
import { openDatabase } from '../../db'
import { createKey, DEFAULT_SCOPES, isActive, isOwner, isScope, keyIdFrom, MAX_KEY_LIFETIME_S, MAX_LABEL, OWNER_RULE, SCOPES, type KeyRecord, type Scope } from './index'
import { keyStore } from './store'

const usage = `usage:
  bun run keys create OWNER [--scope SCOPE]... [--expires DURATION] [--label TEXT]
                                                 prints the new key as the last line
  bun run keys list OWNER                        newest first, with label, expiry and state
  bun run keys revoke KEY_PREFIX                 tm_<id>, <id> or the whole key
scopes: ${SCOPES.join(' ')}
DURATION: seconds, or a number with s, m, h or d (3600, 3600s, 12h, 30d); 1 s to 10 years`

class UsageError extends Error {}

const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** `--expires` in seconds: `3600`, `3600s`, `45m`, `12h`, `30d`. */
function parseDuration(text: string): number {
  const match = /^(\d{1,12})([smhd]?)$/.exec(text.trim())
  const seconds = match ? Number(match[1]) * units[match[2] || 's']! : NaN
  if (!(seconds >= 1 && seconds <= MAX_KEY_LIFETIME_S)) {
    throw new UsageError(`--expires ${JSON.stringify(text)}: expected seconds or a number with s, m, h or d (e.g. 30d), from 1 s to 10 years`)
  }
  return seconds
}

const instant = (ms: number) => new Date(ms).toISOString()

function describeKey(key: KeyRecord, now: number): string {
  const state = key.revokedAt !== null ? `revoked ${instant(key.revokedAt)}` : isActive(key, now) ? 'active' : 'expired'
  const expires = key.expiresAt === null ? 'never expires' : `expires ${instant(key.expiresAt)}`
  return `tm_${key.id}\t${key.scopes}\tcreated ${instant(key.createdAt)}\t${expires}\t${state}${key.label === null ? '' : `\t${JSON.stringify(key.label)}`}`
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { scope: { type: 'string', multiple: true }, expires: { type: 'string' }, label: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  const [command, subject, ...rest] = positionals
  if (values.help) return void console.log(usage)
  if (!command || !subject || rest.length > 0) throw new UsageError('expected a command and one argument')
  if (command !== 'create' && (values.expires !== undefined || values.label !== undefined)) throw new UsageError('--expires and --label go with create')
  // Checked before the database is opened: a bad value changes nothing.
  const lifetime = values.expires === undefined ? null : parseDuration(values.expires)
  const label = values.label ?? null
  if (label !== null && (label.length > MAX_LABEL || label.includes('\u0000') || !label.isWellFormed())) {
    throw new UsageError(`--label must be at most ${MAX_LABEL} characters, without U+0000`)
  }
  // The owner rule the keys API and tokens follow: whoever the API accepts, the CLI accepts.
  if (command !== 'revoke' && !isOwner(subject)) throw new UsageError(`owner must be ${OWNER_RULE}`)
  const config = loadConfig(process.env)
  const database = await openDatabase(config.databaseUrl)
  const keys = keyStore(database)
  try {
    if (command === 'create') {
      const requested = values.scope ?? DEFAULT_SCOPES
      const unknown = requested.filter((scope) => !isScope(scope))
      if (unknown.length > 0) throw new UsageError(`unknown scope ${unknown.join(', ')}`)
      const expiresAt = lifetime === null ? null : Date.now() + lifetime * 1000
      const { id, raw } = await createKey(keys, subject, requested as Scope[], { label, expiresAt })
      const expiry = expiresAt === null ? 'never expires' : `expires ${instant(expiresAt)}`
      console.log(`created key tm_${id} for ${subject} with scopes: ${requested.join(' ')} (${expiry})`)
      console.log('store it now; it cannot be shown again:')
      console.log(raw)
    } else if (command === 'list') {
      const owned = await keys.byOwner(subject)
      if (owned.length === 0) console.log(`no keys for ${subject}`)
      const now = Date.now()
      for (const key of owned) console.log(describeKey(key, now))
    } else if (command === 'revoke') {
      const id = keyIdFrom(subject)
      if (!id) throw new UsageError(`not a key prefix: ${subject}`)
      if (!(await keys.revoke(id, Date.now()))) {
        console.error(`no active key tm_${id}`)
        process.exitCode = 1
        return
      }
      console.log(`revoked tm_${id}`)
    } else {
      throw new UsageError(`unknown command ${command}`)
    }
  } finally {
    await database.close()
  }
}

/** Runs the CLI on `argv` (the words after `keys`); exits 2 on a usage error. */
export async function runKeys(argv: string[]): Promise<void> {
  try {
    await main(argv)
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`keys: ${(error as Error).message}\n${usage}`)
      process.exit(2)
    }
    throw error
  }
}

if (import.meta.main) await runKeys(process.argv.slice(2))
