// The typed client: Eden Treaty over `App`, with the API key sent on every call.
import { treaty } from '@elysiajs/eden'
import type { App } from './app'

export interface ClientOptions {
  /** An API key (`tm_…`), sent as X-API-Key. */
  apiKey?: string
  fetch?: RequestInit
}

export function createClient(baseUrl: string, { apiKey, fetch }: ClientOptions = {}) {
  return treaty<App>(baseUrl, {
    headers: apiKey ? { 'x-api-key': apiKey } : undefined,
    fetch,
    // Keep strings as the API sends them: a title like "2030-01-01" must not turn into a Date.
    parseDate: false,
  })
}

export type Client = ReturnType<typeof createClient>
