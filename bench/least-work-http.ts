// The few response shapes the least-work reference answers with: JSON with an ETag and a
// request id, and problem+json for what the scenarios never send (bad input, unknown ids).
const JSON_TYPE = 'application/json;charset=utf-8'

/** A JSON body the caller already serialized, with `X-Request-Id` (a fresh one, as the service sends) and the ETag and Location given. */
export function json(body: string, status: number, etag?: string, location?: string): Response {
  const headers: Record<string, string> = { 'content-type': JSON_TYPE, 'x-request-id': crypto.randomUUID() }
  if (etag !== undefined) headers.etag = etag
  if (location !== undefined) headers.location = location
  return new Response(body, { status, headers })
}

export function problem(status: number, detail: string): Response {
  return new Response(JSON.stringify({ type: 'about:blank', status, detail }), {
    status,
    headers: { 'content-type': 'application/problem+json', 'x-request-id': crypto.randomUUID() },
  })
}

/** The request's JSON body, or null when it is not JSON. */
export async function bodyOf(request: Request): Promise<unknown> {
  try {
    return await request.json()
  } catch {
    return null
  }
}
