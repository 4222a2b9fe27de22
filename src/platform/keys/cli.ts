// `bun run keys create|list|revoke`: manage API keys in the DATABASE_URL database.
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../../config'
import { openDatabase } from '../../db'
import { createKey, DEFAULT_SCOPES, isScope, keyIdFrom, SCOPES, type Scope } from './index'
import { keyStore } from './store'

const usage = `usage:
  bun run keys create OWNER [--scope SCOPE]...   prints the new key as the last line
  bun run keys list OWNER
  bun run keys revoke KEY_PREFIX                 tm_<id>, <id> or the whole key
scopes: ${SCOPES.join(' ')}`

class UsageError extends Error {}

const ownerPattern = /^[\w.@-]{1,128}$/

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { scope: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
  })
  const [command, subject, ...rest] = positionals
  if (values.help) return void console.log(usage)
  if (!command || !subject || rest.length > 0) throw new UsageError('expected a command and one argument')
  const config = loadConfig(process.env)
  const database = await openDatabase(config.databaseUrl)
  const keys = keyStore(database)
  try {
    if (command === 'create') {
      if (!ownerPattern.test(subject)) throw new UsageError(`owner must be 1-128 of A-Z a-z 0-9 _ . @ -`)
      const requested = values.scope ?? DEFAULT_SCOPES
      const unknown = requested.filter((scope) => !isScope(scope))
      if (unknown.length > 0) throw new UsageError(`unknown scope ${unknown.join(', ')}`)
      const { id, raw } = await createKey(keys, subject, requested as Scope[])
      console.log(`created key tm_${id} for ${subject} with scopes: ${requested.join(' ')}`)
      console.log('store it now; it cannot be shown again:')
      console.log(raw)
    } else if (command === 'list') {
      const owned = await keys.byOwner(subject)
      if (owned.length === 0) console.log(`no keys for ${subject}`)
      for (const key of owned) {
        const state = key.revokedAt === null ? 'active' : `revoked ${new Date(key.revokedAt).toISOString()}`
        console.log(`tm_${key.id}\t${key.scopes}\tcreated ${new Date(key.createdAt).toISOString()}\t${state}`)
      }
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
