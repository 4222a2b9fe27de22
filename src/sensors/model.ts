// Request and response schemas of /v1/sensors, and the shapes of the socket protocol.
import { Type } from '@sinclair/typebox'
import { t } from 'elysia'

export const SENSOR_ID = '^[A-Za-z0-9_.-]{1,64}$'
export const sensorIdPattern = new RegExp(SENSOR_ID)
export const topicPattern = /^sensors\/[A-Za-z0-9_.-]{1,64}$/
/** Largest `data` of one reading, in bytes of JSON as sent. */
export const MAX_DATA_BYTES = 16 * 1024

export const topicOf = (sensorId: string) => `sensors/${sensorId}`

export namespace SensorModel {
  const Data = t.Record(t.String(), t.Unknown(), {
    description: 'The JSON object the publisher sent (at most 16 KiB)',
    error: 'must be a JSON object',
  })

  export const reading = t.Object({
    topic: t.String({ examples: ['sensors/t1'] }),
    seq: Type.Integer({ minimum: 1, description: 'Rises by one per topic within an epoch' }),
    ts: t.String({ format: 'date-time' }),
    data: Data,
  }, { title: 'Reading' })
  export type Reading = typeof reading.static

  export const params = t.Object({
    sensor_id: t.String({ pattern: SENSOR_ID, error: 'must be 1 to 64 of A-Z a-z 0-9 _ . -' }),
  })

  export const publishBody = Data

  export const published = t.Object({
    topic: t.String(),
    seq: Type.Integer({ minimum: 1 }),
  }, { title: 'Published' })

  export const readingsQuery = t.Object({
    since: t.Optional(t.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'Only readings with a greater seq', error: 'must be an integer ≥ 0' })),
    limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000, default: 100, error: 'must be an integer from 1 to 1000' })),
  }, { additionalProperties: false })

  export const readings = t.Object({
    epoch: t.Union([t.String(), t.Null()], { description: 'Names the unbroken history the readings come from; null for a topic without one' }),
    items: t.Array(reading),
  }, { title: 'Readings' })

  export const sensor = t.Object({
    sensor_id: t.String(),
    topic: t.String(),
    last: reading,
  }, { title: 'Sensor' })

  export const list = t.Object({ items: t.Array(sensor) }, { title: 'Sensors' })

  export const ticket = t.Object({
    ticket: t.String({ description: 'Pass as ?ticket= on GET /v1/sensors/ws; one use' }),
    expires_at: t.String({ format: 'date-time' }),
  }, { title: 'Ticket' })

  export const socketQuery = t.Object({
    ticket: t.Optional(t.String({ maxLength: 256 })),
  })

  /** What a client may send on the socket; the server checks every field itself and answers errors in-band. */
  export const clientMessage = t.Union([
    t.Object({ op: t.Literal('subscribe'), topic: t.String(), since: t.Optional(Type.Integer({ minimum: 0 })), epoch: t.Optional(t.String()) }),
    t.Object({ op: t.Literal('unsubscribe'), topic: t.String() }),
    t.Object({ op: t.Literal('publish'), topic: t.String(), data: t.Record(t.String(), t.Unknown()) }),
    t.Object({ op: t.Literal('ping') }),
  ])
  export type ClientMessage = typeof clientMessage.static

  export const serverMessage = t.Union([
    reading,
    t.Object({ op: t.Literal('subscribed'), topic: t.String(), epoch: t.String(), recovered: t.Boolean() }),
    t.Object({ op: t.Literal('error'), code: t.String(), message: t.String() }),
    t.Object({ op: t.Literal('pong') }),
  ])
  export type ServerMessage = typeof serverMessage.static
}
