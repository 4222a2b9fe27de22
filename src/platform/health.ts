// Liveness and readiness probes.
import { Elysia, t } from 'elysia'

export interface ReadinessCheck {
  name: string
  check(): boolean | Promise<boolean>
}

const Health = t.Object({
  status: t.Union([t.Literal('ok'), t.Literal('unavailable')]),
  checks: t.Optional(t.Record(t.String(), t.Boolean())),
})

export function health(checks: ReadinessCheck[]) {
  return new Elysia({ name: 'platform/health', tags: ['health'] })
    .get('/healthz', () => ({ status: 'ok' as const }), {
      response: { 200: Health },
      detail: { summary: 'Liveness: 200 while the process lives' },
    })
    .get('/readyz', async ({ set }) => {
      const results = await Promise.all(checks.map(async ({ name, check }) => [name, await Promise.resolve().then(check).catch(() => false)] as const))
      const ready = results.every(([, ok]) => ok)
      set.status = ready ? 200 : 503
      return { status: ready ? 'ok' as const : 'unavailable' as const, checks: Object.fromEntries(results) }
    }, {
      response: { 200: Health, 503: Health },
      detail: { summary: 'Readiness: 200 when every dependency answers, else 503' },
    })
}
