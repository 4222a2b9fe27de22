// Model uploads and deletes reach every instance: the model files live in a
// shared folder (a volume every replica mounts), and an instance that changes one
// announces it over Redis so the others re-read the folder at once, instead of
// at their next poll (fs.watch does not see another host's writes on a network volume).
import type { RedisClient } from 'bun'
import type { Logger } from '../platform/logger'
import type { ModelRegistry } from './registry'

export async function shareModelChanges(redis: RedisClient, prefix: string, registry: ModelRegistry, log: Logger): Promise<() => void> {
  const channel = `${prefix}models`
  const origin = crypto.randomUUID()
  const subscriber = await redis.duplicate()
  await subscriber.subscribe(channel, (message) => {
    const [from, name] = message.split(' ')
    if (from === origin) return
    log.info({ model: name }, 'models: changed on another instance; re-reading the folder')
    registry.poll().catch((error: unknown) => log.error({ err: error }, 'models: re-reading the folder failed'))
  })
  registry.onChange((name) => {
    redis.send('PUBLISH', [channel, `${origin} ${name}`]).catch((error: unknown) => log.warn({ err: error, model: name }, 'models: could not announce a change'))
  })
  return () => subscriber.close()
}
