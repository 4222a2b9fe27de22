// Reading JSON request bodies strictly: media type (415), size (413), UTF-8 and
// JSON syntax (400), in that order, before any schema check (422).
import { HttpError } from './errors'

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/** `application/json`, or any `application/*+json` (e.g. merge-patch), with optional parameters. */
export function isJsonMediaType(contentType: string): boolean {
  const semi = contentType.indexOf(';')
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'))
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, `the request body is larger than the limit of ${limit} bytes`)
}

async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length')
  if (declared !== null) {
    if (Number(declared) > limit) throw tooLarge(limit)
    return new Uint8Array(await request.arrayBuffer())
  }
  // Chunked upload: count as it streams so an endless body is cut off early.
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body ?? []) {
    size += chunk.byteLength
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

export async function readJson(request: Request, contentType: string, limit: number): Promise<unknown> {
  if (!isJsonMediaType(contentType)) {
    throw new HttpError(415, 'the request body must be JSON (Content-Type: application/json)')
  }
  const bytes = await readLimited(request, limit)
  if (bytes.byteLength > limit) throw tooLarge(limit)
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    throw new HttpError(400, 'the request body is not valid UTF-8')
  }
  if (text.trim() === '') throw new HttpError(400, 'the request body is empty; expected a JSON document')
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new HttpError(400, `the request body is not valid JSON: ${(error as Error).message}`)
  }
}

