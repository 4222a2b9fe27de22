// GET /dashboard and its scripts and styles, all served from this process (embedded in
// the single-file executable), under a CSP that allows nothing but the service itself.
import { Elysia, t } from 'elysia'
import { HttpError, problemResponses } from '../platform/errors'
import uplotCss from 'uplot/dist/uPlot.min.css' with { type: 'file' }
import uplotJs from 'uplot/dist/uPlot.iife.min.js' with { type: 'file' }
import css from './dashboard/dashboard.css' with { type: 'file' }
import script from './dashboard/dashboard.js' with { type: 'file' }
import html from './dashboard/index.html' with { type: 'file' }

// bun-types declare *.html as an HTML bundle; imported `with { type: 'file' }` it is a path.
const page = html as unknown as string

// A Map, since the file name comes from the URL: `constructor` or `__proto__` must not find Object.prototype's.
const assets = new Map<string, { path: string; type: string; cache: string }>([
  ['dashboard.js', { path: script, type: 'text/javascript; charset=utf-8', cache: 'no-cache' }],
  ['dashboard.css', { path: css, type: 'text/css; charset=utf-8', cache: 'no-cache' }],
  ['uPlot.iife.min.js', { path: uplotJs, type: 'text/javascript; charset=utf-8', cache: 'public, max-age=86400' }],
  ['uPlot.min.css', { path: uplotCss, type: 'text/css; charset=utf-8', cache: 'public, max-age=86400' }],
])

/** Only the service itself: no inline script or style, no other origin. */
export const DASHBOARD_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ')

export function dashboard() {
  return new Elysia({ name: 'sensors/dashboard', tags: ['dashboard'] })
    .get('/dashboard', () => new Response(Bun.file(page), {
      headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', 'content-security-policy': DASHBOARD_CSP },
    }), {
      response: { 200: t.String({ description: 'The dashboard page', contentMediaType: 'text/html' }) },
      detail: { summary: 'Live sensor dashboard', description: 'Public page: asks for an API key, then shows the sensors and their live readings.' },
    })
    .get('/dashboard/assets/:file', ({ params }) => {
      const asset = assets.get(params.file)
      if (!asset) throw new HttpError(404, `no dashboard asset named ${params.file}`)
      return new Response(Bun.file(asset.path), { headers: { 'content-type': asset.type, 'cache-control': asset.cache } })
    }, {
      params: t.Object({ file: t.String({ description: `One of ${[...assets.keys()].join(', ')}` }) }),
      response: {
        200: t.Union([t.String({ contentMediaType: 'text/javascript' }), t.String({ contentMediaType: 'text/css' })], { description: 'A script or style of the dashboard' }),
        ...problemResponses(404),
      },
      detail: { summary: 'Scripts and styles of the dashboard' },
    })
}
