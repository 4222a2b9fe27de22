// Routes of /v1/keys: any valid credential manages its own API keys (service.ts has the rules).
import { Elysia, t } from 'elysia'
import { auth, type Credentials } from '../platform/auth'
import { problemResponses } from '../platform/errors'
import type { KeyStore } from '../platform/keys'
import { routeOptions } from '../platform/route-options'
import { unchecked } from '../platform/unchecked'
import { KeyModel } from './model'
import { KeyService } from './service'

/** A key request is a few hundred bytes. */
const BODY_LIMIT = 16 * 1024

export function keys(store: KeyStore, credentials: Credentials) {
  const service = new KeyService(store)
  return new Elysia({ name: 'keys', prefix: '/v1/keys', tags: ['keys'] })
    .use(auth(credentials))
    .use(routeOptions)
    .post('', async ({ body, principal, set }) => {
      const created = await service.create(principal, body)
      set.status = 201
      return created
    }, {
      auth: 'any',
      rateGroup: 'keys',
      bodyLimit: BODY_LIMIT,
      body: KeyModel.input,
      parse: 'json',
      response: { 201: unchecked(KeyModel.created), ...problemResponses(400, 401, 403, 413, 415, 422, 500) },
      detail: {
        summary: 'Create an API key',
        description: 'Any credential holding a scope of this service may create keys for its own owner (403 otherwise). `scopes` default to the caller\'s own and must each be held by the caller '
          + '(`admin` holds every scope, so an admin may give any, `admin` included); another scope is 403. Only `admin` may name another `owner` (403 otherwise). '
          + '`expires_in` (1 s to 10 years) sets `expires_at`, from which the key is 401 like a revoked one; a key that expires cannot create one that outlives it (403), '
          + 'and by default the new key expires with it. A key created with an access token expires in 90 days by default and at most (a longer `expires_in` is 403). '
          + 'The raw `key` is in this response only.',
      },
    })
    .get('', ({ query, principal }) => service.list(principal, query.owner), {
      auth: 'any',
      rateGroup: 'keys',
      query: KeyModel.listQuery,
      response: { 200: unchecked(KeyModel.list), ...problemResponses(401, 403, 422, 500) },
      detail: {
        summary: 'List your API keys',
        description: 'All of your keys, newest first, revoked and expired ones included, never a secret. Needs a credential holding a scope of this service (403 otherwise). '
          + '`admin` may pass `?owner=` (403 for anyone else naming another owner).',
      },
    })
    .delete('/:id', async ({ params, principal, set }) => {
      await service.revoke(principal, params.id)
      set.status = 204
    }, {
      auth: 'any',
      rateGroup: 'keys',
      params: KeyModel.params,
      response: { 204: t.Undefined({ description: 'Revoked: refused everywhere within 2 s, its sockets closed with 1008' }), ...problemResponses(401, 403, 404, 422, 500) },
      detail: {
        summary: 'Revoke an API key',
        description: 'One of your keys whose scopes the caller holds, each (`admin`: anyone\'s key). Needs a credential holding a scope of this service (403 otherwise). '
          + 'A key with a scope the caller lacks, another owner\'s key, an unknown one and one already revoked are all 404.',
      },
    })
}
