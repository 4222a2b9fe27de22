// Liveness and readiness probes.
import { Elysia, t } from 'elysia'
import { HttpError, ProblemSchema } from './errors'

export interface ReadinessCheck {
  name: string
  check(): boolean | Promise<boolean>
}

const Checks = t.Record(t.String(), t.Boolean())

/** The checks /readyz runs; the composition and each feature add their own. */
export class Readiness {
  readonly checks: ReadinessCheck[] = []

  add(name: string, check: () => boolean | Promise<boolean>): this {
    this.checks.push({ name, check })
    return this
  }
}

export function health({ checks }: Readiness) {
  return new Elysia({ name: 'platform/health', tags: ['health'] })
    .get('/healthz', () => ({ status: 'ok' as const }), {
      response: { 200: t.Object({ status: t.Literal('ok') }) },
      detail: { summary: 'Liveness: 200 while the process lives' },
    })
    .get('/readyz', async () => {
      const results = await Promise.all(checks.map(async ({ name, check }) => [name, await Promise.resolve().then(check).catch(() => false)] as const))
      const failing = results.filter(([, ok]) => !ok).map(([name]) => name)
      const report = Object.fromEntries(results)
      if (failing.length === 0) return { status: 'ok' as const, checks: report }
      // Not ready is a problem like any other, with the checks as an extension member.
      throw new HttpError(503, `not ready: ${failing.join(', ')}`, { headers: { 'retry-after': '1' }, extensions: { checks: report } })
    }, {
      response: { 200: t.Object({ status: t.Literal('ok'), checks: Checks }), 503: t.Composite([ProblemSchema, t.Object({ checks: Checks })]) },
      detail: { summary: 'Readiness: 200 when every dependency answers, else 503' },
    })
}
