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

/**
 * Opens the sensor feed socket (`GET /v1/sensors/ws`) with a one-use ticket for the client's key.
 * Send `{ op: 'subscribe', topic }` once it is open. Eden's socket turns date-time strings in
 * messages into Dates (sockets have no parseDate option), so a reading's `ts` arrives as a Date.
 */
export async function openSensorFeed(api: Client) {
  const ticket = await api.v1.sensors.tickets.post()
  if (ticket.error) throw new Error(`POST /v1/sensors/tickets answered ${ticket.status}: ${JSON.stringify(ticket.error.value)}`)
  return api.v1.sensors.ws.subscribe({ query: { ticket: ticket.data.ticket } })
}
