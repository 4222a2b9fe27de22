// The `auth` macro: a route declares the scope it needs (`{ auth: 'tasks:read' }`)
// and receives the caller's `principal`. Keys are checked before the body schema,
// so an anonymous caller learns nothing from validation errors.
import { Elysia } from 'elysia'
import { HttpError } from './errors'
import { hasScope, verifyKey, type KeyStore, type Principal, type Scope } from './keys'

const realm = 'Bearer realm="taskmesh"'

/** The raw key from `X-API-Key` or `Authorization: Bearer`, if any. */
export function presentedKey(headers: Headers): string | null {
  const header = headers.get('x-api-key')
  if (header) return header.trim()
  const authorization = headers.get('authorization')
  if (authorization && /^bearer\s+/i.test(authorization)) return authorization.replace(/^bearer\s+/i, '').trim()
  return null
}

export async function authenticate(keys: KeyStore, headers: Headers, scope: Scope): Promise<Principal> {
  const raw = presentedKey(headers)
  if (!raw) throw new HttpError(401, 'an API key is required (X-API-Key or Authorization: Bearer)', { 'www-authenticate': realm })
  const principal = await verifyKey(keys, raw)
  if (!principal) {
    throw new HttpError(401, 'the API key is invalid or revoked', { 'www-authenticate': `${realm}, error="invalid_token"` })
  }
  if (!hasScope(principal, scope)) {
    throw new HttpError(403, `the API key lacks the scope ${scope}`, {
      'www-authenticate': `${realm}, error="insufficient_scope", scope="${scope}"`,
    })
  }
  return principal
}

const principalOf = new WeakMap<Request, Principal>()

export function auth(keys: KeyStore) {
  return new Elysia({ name: 'platform/auth' }).macro({
    auth: (scope: Scope) => ({
      // transform runs after parsing but before schema validation: 401/403 win over 422.
      async transform({ request }) {
        principalOf.set(request, await authenticate(keys, request.headers, scope))
      },
      resolve({ request }) {
        return { principal: principalOf.get(request)! }
      },
      detail: { security: [{ apiKey: [] }, { bearer: [] }] },
    }),
  })
}
