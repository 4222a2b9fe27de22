// Request and response schemas of /v1/keys. Server-owned fields (id, the key itself, timestamps)
// appear only in responses; `owner` in a request is honoured for `admin` alone (service.ts).
import { Type } from '@sinclair/typebox'
import { t } from 'elysia'
import { MAX_KEY_LIFETIME_S as MAX_EXPIRES_IN, MAX_LABEL, MAX_OWNER, OWNER_PATTERN, OWNER_RULE, SCOPES } from '../platform/keys'

export { MAX_EXPIRES_IN }
/** The longest a key minted with an access token lives, and what it lives by default: 90 days, in seconds. */
export const MAX_TOKEN_KEY_LIFETIME_S = 90 * 24 * 3600

const Scope = t.UnionEnum(SCOPES, { error: `must be one of: ${SCOPES.join(', ')}` })
const Instant = t.String({ format: 'date-time' })
// The schema checks what JSON Schema can; the service checks the rest of isOwner (lone surrogates).
const Owner = t.String({
  minLength: 1, maxLength: MAX_OWNER, pattern: OWNER_PATTERN,
  error: `must be ${OWNER_RULE}`,
  description: 'Whose key it is (the owner namespace keys and tokens share)',
})

export namespace KeyModel {
  /** A stored key as listed: never its secret. */
  export const key = t.Object({
    id: t.String({ description: 'The 8-character id, as in tm_<id>_…; DELETE /v1/keys/{id} takes it' }),
    owner: t.String(),
    scopes: t.Array(Scope),
    label: t.Union([t.String(), t.Null()]),
    created_at: Instant,
    expires_at: t.Union([Instant, t.Null()], { description: 'From this instant the key is refused (401); null: never' }),
    revoked_at: t.Union([Instant, t.Null()]),
  }, { title: 'ApiKey' })
  export type Key = typeof key.static

  /** The answer to a create: the one time the raw key is shown. */
  export const created = t.Object({
    id: t.String(),
    key: t.String({ description: 'The raw key (tm_<id>_<secret>); only its SHA-256 is stored, so it is never shown again' }),
    owner: t.String(),
    scopes: t.Array(Scope),
    label: t.Union([t.String(), t.Null()]),
    created_at: Instant,
    expires_at: t.Union([Instant, t.Null()]),
  }, { title: 'CreatedApiKey' })
  export type Created = typeof created.static

  export const input = t.Object({
    scopes: t.Optional(t.Array(Scope, {
      minItems: 1, maxItems: 32, error: `must be a non-empty array of: ${SCOPES.join(', ')}`,
      description: 'Default: the calling credential\'s own; each must be one the caller holds (admin holds them all)',
    })),
    expires_in: t.Optional(Type.Integer({
      minimum: 1, maximum: MAX_EXPIRES_IN, error: `must be an integer number of seconds from 1 to ${MAX_EXPIRES_IN} (ten years)`,
      description: 'Seconds until the key expires; default: never (a key minting it: when that key expires; an access token: 90 days, also the longest)',
    })),
    label: t.Optional(t.Union([t.String({ maxLength: MAX_LABEL }), t.Null()], {
      error: `must be a string of at most ${MAX_LABEL} characters, or null`,
      description: `At most ${MAX_LABEL} characters, without U+0000 or lone surrogates`,
    })),
    owner: t.Optional(Owner),
  }, { additionalProperties: false, title: 'ApiKeyInput' })
  export type Input = typeof input.static

  export const list = t.Object({ items: t.Array(key) }, { title: 'ApiKeyList' })
  export type List = typeof list.static

  export const listQuery = t.Object({
    owner: t.Optional(t.String({ ...Owner, description: 'admin only: list this owner\'s keys instead of your own' })),
  }, { additionalProperties: false })

  export const params = t.Object({
    id: t.String({ pattern: '^[A-Za-z0-9]{8}$', error: 'must be a key id: 8 letters or digits', description: 'The id of POST /v1/keys or GET /v1/keys' }),
  })
}
