// The OpenAPI 3.1 document (@elysiajs/openapi), Swagger UI at /docs and ReDoc at
// /redoc, with every script and style served from this process: no CDN, and a
// strict CSP (no inline scripts) on both pages.
import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import swaggerBundle from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' }
import swaggerCss from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' }
import redocBundle from 'redoc/bundles/redoc.standalone.js' with { type: 'file' }
import pkg from '../../package.json'
import { registerFormats } from './formats'

registerFormats()

const js = 'text/javascript; charset=utf-8'
const assets: Record<string, { file: string | Blob; type: string }> = {
  '/docs/assets/swagger-ui-bundle.js': { file: swaggerBundle, type: js },
  '/docs/assets/swagger-ui.css': { file: swaggerCss, type: 'text/css; charset=utf-8' },
  '/docs/assets/init.js': {
    file: new Blob([`window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', persistAuthorization: true, deepLinking: true })\n`]),
    type: js,
  },
  '/redoc/assets/redoc.standalone.js': { file: redocBundle, type: js },
}

// Both UIs set inline style attributes, and ReDoc runs its search in a blob: worker.
const csp = [
  "default-src 'none'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
  "font-src 'self' data:", "connect-src 'self'", "worker-src 'self' blob:", "base-uri 'none'",
  "form-action 'self'", "frame-ancestors 'none'",
].join('; ')

const page = (title: string, body: string) => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${title}</title>
${body}`

const swaggerPage = page('taskmesh API: Swagger UI', `  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>`)

const redocPage = page('taskmesh API: ReDoc', `</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <script src="/redoc/assets/redoc.standalone.js"></script>
</body>
</html>`)

const html = (body: string) => () =>
  new Response(body, { headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp } })

function asset({ path }: { path: string }) {
  const found = assets[path]!
  const body = typeof found.file === 'string' ? Bun.file(found.file) : found.file
  return new Response(body, { headers: { 'content-type': found.type, 'cache-control': 'public, max-age=3600' } })
}

const hidden = { detail: { hide: true } }

export function docs() {
  const app = new Elysia({ name: 'platform/docs' })
    .use(openapi({
      path: '/docs',
      specPath: '/openapi.json',
      provider: null,
      // The socket route is documented by its HTTP GET (the upgrade); `ws` is not an OpenAPI method.
      exclude: { paths: ['/docs', '/redoc', ...Object.keys(assets)], methods: ['WS', 'ws'] },
      documentation: {
        info: {
          title: 'taskmesh',
          version: pkg.version,
          description: 'Tasks, a real-time sensor feed and model serving behind API keys. Errors are RFC 9457 application/problem+json.',
        },
        components: {
          securitySchemes: {
            apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
            bearer: { type: 'http', scheme: 'bearer', description: 'The same API key as a bearer token' },
          },
        },
      },
    }))
    .get('/docs', html(swaggerPage), hidden)
    .get('/redoc', html(redocPage), hidden)
  for (const path of Object.keys(assets)) app.get(path, asset, hidden)
  return app
}
