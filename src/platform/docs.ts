// The OpenAPI 3.1 document, Swagger UI at /docs and ReDoc at /redoc, with every
// script and style served from this process (no CDN).
import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import swaggerBundle from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' }
import swaggerCss from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' }
import redocBundle from 'redoc/bundles/redoc.standalone.js' with { type: 'file' }
import pkg from '../../package.json'

const assets: Record<string, { path: string; type: string }> = {
  '/docs/assets/swagger-ui-bundle.js': { path: swaggerBundle, type: 'text/javascript; charset=utf-8' },
  '/docs/assets/swagger-ui.css': { path: swaggerCss, type: 'text/css; charset=utf-8' },
  '/redoc/assets/redoc.standalone.js': { path: redocBundle, type: 'text/javascript; charset=utf-8' },
}

const redocPage = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>taskmesh API reference</title>
</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <script src="/redoc/assets/redoc.standalone.js"></script>
</body>
</html>`

function asset(path: string) {
  const found = assets[path]!
  return new Response(Bun.file(found.path), {
    headers: { 'content-type': found.type, 'cache-control': 'public, max-age=86400' },
  })
}

export function docs() {
  return new Elysia({ name: 'platform/docs' })
    .use(openapi({
      path: '/docs',
      specPath: '/openapi.json',
      provider: 'swagger-ui',
      swagger: {
        cdn: '/docs/assets/swagger-ui-bundle.js',
        theme: '/docs/assets/swagger-ui.css',
        persistAuthorization: true,
      },
      exclude: { paths: ['/docs', '/redoc', ...Object.keys(assets)] },
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
    .get('/redoc', () => new Response(redocPage, { headers: { 'content-type': 'text/html; charset=utf-8' } }), { detail: { hide: true } })
    .get('/docs/assets/swagger-ui-bundle.js', ({ path }) => asset(path), { detail: { hide: true } })
    .get('/docs/assets/swagger-ui.css', ({ path }) => asset(path), { detail: { hide: true } })
    .get('/redoc/assets/redoc.standalone.js', ({ path }) => asset(path), { detail: { hide: true } })
}
