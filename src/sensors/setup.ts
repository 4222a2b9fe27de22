// Builds the sensor feed and wires it into the process: the memory feed, or with Redis the
// shared one followed across connection losses; the simulator; sockets closed at shutdown; metrics.
import type { RedisClient } from 'bun'
import type { Config } from '../config'
import type { Lifecycle } from '../platform/lifecycle'
import type { Logger } from '../platform/logger'
import type { Telemetry } from '../platform/observability'
import type { Limiter } from '../platform/ratelimit'
import type { Feed } from './feed'
import { MemoryFeed, type HistoryOptions } from './history'
import { SensorHub, type HubOptions } from './hub'
import { RedisFeed } from './redis'
import { RedisSocketSlots } from './socket-slots'
import { startSimulator, type Simulator } from './simulator'
import { defaultSocketLimits, SensorSockets, type SocketLimits } from './socket'
import { MemoryTicketStore, RedisTicketStore, type TicketStore } from './tickets'

/** Everything the sensor feed keeps at run time; build one with `sensorFeed()`. */
export interface SensorFeed {
  hub: SensorHub
  /** Numbers readings and keeps their history: in memory, or shared through Redis. */
  source: Feed
  tickets: TicketStore
  sockets: SensorSockets
}

export interface SensorFeedOptions extends HistoryOptions, HubOptions {
  tickets?: TicketStore
  socketLimits?: Partial<SocketLimits>
  /** With `log` and `lifecycle`, the feed wires itself into the service (index.ts); without, it is a bare memory feed. */
  config?: Config
  /** REDIS_URL's client: then readings, their history and tickets are shared by every instance. */
  redis?: RedisClient | null
  log?: Logger
  lifecycle?: Lifecycle
  /** The gateway's rate-limit buckets: with `config`, socket publishes draw from the key's sensors bucket. */
  limiter?: Limiter
}

/** The sensors rate limit, as the gateway resolves it: RATE_LIMIT_SENSORS, else RATE_LIMIT; null when off. */
function sensorsLimit(config: Pick<Config, 'rateLimit' | 'rateLimits'>) {
  return 'sensors' in config.rateLimits ? (config.rateLimits.sensors ?? null) : config.rateLimit
}

/**
 * A socket's messages are limited like requests: the sensors rate limit (RATE_LIMIT, or
 * RATE_LIMIT_SENSORS), per connection, with the same burst; none when it is off.
 */
export function socketLimitsFor(config: Pick<Config, 'rateLimit' | 'rateLimits'>): SocketLimits {
  const limit = sensorsLimit(config)
  return { ...defaultSocketLimits, ...(limit ? { rate: limit.rate, burst: limit.burst } : { rate: Infinity, burst: Infinity }) }
}

export function sensorFeed({ tickets, socketLimits, config, redis = null, log, lifecycle, limiter, ...options }: SensorFeedOptions = {}): SensorFeed {
  const shared = redis && config?.redisUrl
    ? {
        source: new RedisFeed(redis, config.redisUrl, config.redisPrefix, options),
        tickets: new RedisTicketStore(redis, config.redisPrefix),
        slots: new RedisSocketSlots(redis, config.redisPrefix),
      }
    : null
  const source = shared?.source ?? new MemoryFeed(options)
  const hub = new SensorHub(source, options)
  const publishLimit = config && limiter ? sensorsLimit(config) : null
  const feed: SensorFeed = {
    hub,
    source,
    tickets: tickets ?? shared?.tickets ?? new MemoryTicketStore({ now: options.now }),
    sockets: new SensorSockets(hub, { ...(config ? socketLimitsFor(config) : defaultSocketLimits), ...socketLimits }, options.now,
      publishLimit && limiter ? { limiter, limit: publishLimit } : null, shared?.slots ?? null),
  }
  // The shared feed is followed once the service starts (and again after every loss); memory delivers from now on.
  if (!shared) void source.listen(hub)
  if (config && log && lifecycle) wire(feed, shared !== null, config, log, lifecycle)
  return feed
}

function wire({ hub, source }: SensorFeed, shared: boolean, config: Config, log: Logger, lifecycle: Lifecycle): void {
  let stopping = false
  let simulator: Simulator | null = null
  const retry = () => {
    if (!stopping) setTimeout(() => void follow(), 1000).unref()
  }
  const lost = () => {
    log.warn('lost the shared sensor feed; closing sockets so clients resume elsewhere')
    hub.disconnect(1012, 'sensor feed interrupted: reconnect and resubscribe with since')
    retry()
  }
  const follow = async (): Promise<void> => {
    try {
      await source.listen(hub, lost)
    } catch (error) {
      log.warn({ err: error }, 'cannot follow the shared sensor feed yet; retrying')
      retry()
    }
  }
  lifecycle.onStart(async () => {
    if (shared) await follow()
    // Under WORKERS only the first worker simulates, or every reading would come N times.
    if (config.simulator && (config.workerId ?? 0) === 0) simulator = startSimulator(hub)
  })
  // Sensor sockets go first, with 1001: the server's stop would wait for them.
  lifecycle.onDrain(() => {
    stopping = true
    hub.shutdown()
  })
  lifecycle.onShutdown(() => {
    simulator?.stop()
    source.close()
  })
}

/** The feed's gauges and totals on /metrics. */
export function sensorMetrics(telemetry: Telemetry, { hub, source }: SensorFeed): void {
  telemetry.gauge('sensor_ws_connections', 'Open sensor WebSocket connections', () => hub.connections)
  telemetry.gauge('sensor_topics', 'Sensor topics with a history kept', () => source.topics)
  telemetry.total('sensor_messages_published_total', 'Readings accepted for fan-out', () => hub.published)
  telemetry.total('sensor_messages_dropped_total', 'Reading frames not delivered to a subscriber that could not keep up', () => hub.dropped)
  telemetry.total('sensor_slow_consumer_closes_total', 'Sockets closed with 1013 for not keeping up', () => hub.slowConsumerCloses)
  telemetry.total('sensor_messages_rate_limited_total', 'Socket messages refused by the per-connection rate limit or, for publishes, the sensors rate limit of their key', () => hub.rateLimited)
}
