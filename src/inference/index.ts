// The inference feature: /v1/models, /v1/predict and the Open Inference Protocol (KServe v2) under
// /v2, as thin handlers over InferenceService, and the wiring the feature needs (its registry's
// start, shutdown and readiness, and model changes shared over Redis). Errors under /v2 take the
// protocol's shape (kserveErrors).
import type { RedisClient } from 'bun'
import { Elysia, t } from 'elysia'
import pkg from '../../package.json'
import type { Config } from '../config'
import { auth, type Credentials } from '../platform/auth'
import { errorResponses, HttpError, problemResponses } from '../platform/errors'
import type { Readiness } from '../platform/health'
import type { ErrorRenderer } from '../platform/http'
import type { Lifecycle } from '../platform/lifecycle'
import type { Logger } from '../platform/logger'
import type { Telemetry } from '../platform/observability'
import { routeOptions } from '../platform/route-options'
import { unchecked } from '../platform/unchecked'
import { shareModelChanges } from './announce'
import { InferenceMetrics } from './metrics'
import { InferenceModel, KServeModel, MAX_ROWS } from './model'
import { ModelRegistry } from './registry'
import { InferenceService, SEED_MODEL } from './service'

// Built by the service from the kernel's outputs: documented, not re-checked per response (the tests check them).
const prediction = unchecked(InferenceModel.prediction)
const seedPrediction = unchecked(InferenceModel.seedPrediction)
const inferResponse = unchecked(KServeModel.inferResponse)

export interface InferenceDeps {
  config: Pick<Config, 'modelsDir' | 'redisPrefix'>
  credentials: Credentials
  telemetry: Telemetry
  /** Loads the models before the port opens, closes them at shutdown; `accepting` gates /v2/health/ready. */
  lifecycle: Lifecycle
  /** Where the check `models` goes. */
  readiness: Readiness
  log: Logger
  /** With Redis, uploads and deletes are announced to the other instances. */
  redis?: RedisClient | null
  /** The models to serve, already loaded (tests); without one, MODELS_DIR is loaded at start and watched. */
  registry?: ModelRegistry
}

// 10 000 rows of a few features at full precision do not fit the service-wide 1 MiB.
export const BATCH_BODY_LIMIT = 8 * 1024 * 1024
/** A model upload: large forests and boosters run to tens of MiB of JSON. */
export const UPLOAD_BODY_LIMIT = 64 * 1024 * 1024
/** What a 415 on PUT /v1/models/{name} tells a user who sent a pickle. */
export const PICKLE_HINT = 'pickles are never loaded: export a scikit-learn model to a model file with '
  + '`python3 scripts/export-sklearn.py MODEL.joblib`, or save an XGBoost booster with save_model("NAME.json"), and PUT that JSON'

/** Under /v2 errors take the Open Inference Protocol's shape, `{ "error": "…" }`, not problem+json. */
export const kserveErrors: ErrorRenderer = {
  prefix: '/v2',
  render: (problem) => ({ body: JSON.stringify({ error: problem.detail }), contentType: 'application/json' }),
}

/** Response schemas of the /v2 error statuses: the protocol's `{ "error" }`, not problem+json. */
const v2Errors = <const C extends number>(...codes: C[]) => errorResponses(KServeModel.error, ...codes)

export function inference({ config, credentials, telemetry, lifecycle, readiness, log, redis, registry: given }: InferenceDeps) {
  const registry = given ?? new ModelRegistry({ dir: config.modelsDir, log })
  readiness.add('models', () => registry.ready)
  if (redis) {
    lifecycle.onStart(async () => {
      const stopSharing = await shareModelChanges(redis, config.redisPrefix, registry, log)
        .catch((error: unknown) => (log.warn({ err: error }, 'model changes are not announced to other instances (Redis unreachable)'), null))
      if (stopSharing) lifecycle.onShutdown(stopSharing)
    })
  }
  // Load MODELS_DIR before the port opens (readiness `models` stays false until then), then watch it.
  if (!given) lifecycle.onStart(() => registry.start())
  lifecycle.onShutdown(() => registry.close())
  const service = new InferenceService(registry, new InferenceMetrics(telemetry, registry))
  const v1 = new Elysia({ name: 'inference/v1', tags: ['predictions'] })
    .use(auth(credentials))
    .use(routeOptions)
    .get('/v1/models', () => service.list(), {
      auth: 'predict',
      rateGroup: 'inference',
      response: { 200: InferenceModel.list, ...problemResponses(401, 403, 500) },
      detail: { summary: 'List the models', description: 'The models being served, and the files of MODELS_DIR that failed validation.' },
    })
    .get('/v1/models/:name', ({ params }) => service.model(params.name).summary, {
      auth: 'predict',
      rateGroup: 'inference',
      params: InferenceModel.params,
      response: { 200: InferenceModel.summary, ...problemResponses(401, 403, 404, 500) },
      detail: { summary: 'Get a model' },
    })
    .put('/v1/models/:name', async ({ params, body, set }) => {
      const { summary, created } = await service.upload(params.name, body)
      set.status = created ? 201 : 200
      if (created) set.headers.location = `/v1/models/${params.name}`
      return summary
    }, {
      auth: 'admin',
      rateGroup: 'inference',
      bodyLimit: UPLOAD_BODY_LIMIT,
      notJsonHint: PICKLE_HINT,
      params: InferenceModel.params,
      body: InferenceModel.file,
      parse: 'json',
      response: { 200: InferenceModel.summary, 201: InferenceModel.summary, ...problemResponses(400, 401, 403, 413, 415, 422, 500, 503) },
      detail: {
        summary: 'Upload or replace a model',
        description: 'A model file of this service, or an XGBoost booster as save_model wrote it (recognised by `learner`), up to 64 MiB and '
          + '1 000 000 tree nodes (413 past either). Validated, compiled and written to MODELS_DIR (atomically) before the answer: 201 when new, '
          + '200 when it replaced a version, which requests already running finish on. A bad file is a 422 and the old version keeps serving. '
          + 'A pickle or joblib file is a 415: export it with scripts/export-sklearn.py.',
      },
    })
    .delete('/v1/models/:name', async ({ params, set }) => {
      await service.remove(params.name)
      set.status = 204
    }, {
      auth: 'admin',
      rateGroup: 'inference',
      params: InferenceModel.params,
      response: { 204: t.Undefined({ description: 'Deleted: the model is no longer served and its file is gone' }), ...problemResponses(401, 403, 404, 500) },
      detail: { summary: 'Delete a model' },
    })
    .post('/v1/models/:name/predict', ({ params, body }) => service.predict(params.name, body), {
      auth: 'predict',
      lean: true,
      nativeJson: true,
      rateGroup: 'inference',
      bodyLimit: BATCH_BODY_LIMIT,
      params: InferenceModel.params,
      body: InferenceModel.predictBody,
      parse: 'json',
      response: { 200: prediction, ...problemResponses(400, 401, 403, 404, 413, 415, 422, 500) },
      detail: {
        summary: 'Predict',
        description: `One row by feature name (\`features\`) or up to ${MAX_ROWS} rows (\`instances\`, each positional or by name). `
          + 'A missing or unknown feature, a value that is not a finite number or a row of the wrong length is a 422 naming it.',
      },
    })
    .post('/v1/predict', ({ body }) => service.predictSeed(body), {
      auth: 'predict',
      nativeJson: true,
      rateGroup: 'inference',
      body: InferenceModel.seedBody,
      parse: 'json',
      response: { 200: seedPrediction, ...problemResponses(400, 401, 403, 413, 415, 422, 500, 503) },
      detail: { summary: 'Predict with the seed model', description: `The seed's call, served by the model ${SEED_MODEL}; 503 when it is not loaded.` },
    })

  const v2 = new Elysia({ name: 'inference/v2', tags: ['kserve v2'] })
    .use(auth(credentials))
    .use(routeOptions)
    // Like the model routes, not like /v2/health/*: only the health checks are public.
    .get('/v2', () => ({ name: 'taskmesh', version: pkg.version, extensions: [] as string[] }), {
      auth: 'predict',
      rateGroup: 'inference',
      response: { 200: t.Object({ name: t.String(), version: t.String(), extensions: t.Array(t.String()) }), ...v2Errors(401, 403) },
      detail: { summary: 'Server metadata (Open Inference Protocol)' },
    })
    .get('/v2/health/live', () => ({ live: true }), {
      rateGroup: 'inference',
      response: { 200: KServeModel.live },
      detail: { summary: 'Server live (Open Inference Protocol)' },
    })
    .get('/v2/health/ready', () => {
      if (!registry.ready || !lifecycle.accepting) throw new HttpError(503, registry.ready ? 'the server is shutting down' : 'the models are still loading')
      return { ready: true }
    }, {
      rateGroup: 'inference',
      response: { 200: KServeModel.ready, ...v2Errors(503) },
      detail: { summary: 'Server ready (Open Inference Protocol)', description: '200 once the models are loaded, 503 before and while shutting down.' },
    })
    .get('/v2/models/:name', ({ params }) => service.metadata(params.name), {
      auth: 'predict',
      rateGroup: 'inference',
      params: InferenceModel.params,
      response: { 200: KServeModel.metadata, ...v2Errors(401, 403, 404, 500) },
      detail: { summary: 'Model metadata (Open Inference Protocol)' },
    })
    .get('/v2/models/:name/ready', ({ params }) => service.modelReady(params.name), {
      auth: 'predict',
      rateGroup: 'inference',
      params: InferenceModel.params,
      response: { 200: KServeModel.modelReady, ...v2Errors(401, 403, 404, 500, 503) },
      detail: { summary: 'Model ready (Open Inference Protocol)', description: '503 when the model\'s file exists but was rejected.' },
    })
    .post('/v2/models/:name/infer', ({ params, body }) => service.infer(params.name, body), {
      auth: 'predict',
      nativeJson: true,
      rateGroup: 'inference',
      bodyLimit: BATCH_BODY_LIMIT,
      params: InferenceModel.params,
      body: KServeModel.inferBody,
      parse: 'json',
      response: { 200: inferResponse, ...v2Errors(400, 401, 403, 404, 413, 415, 422, 500) },
      detail: {
        summary: 'Inference (Open Inference Protocol)',
        description: `One FP64 input tensor of shape [rows, features] (rows up to ${MAX_ROWS}), data flat or nested. `
          + 'Outputs: predict ([rows, 1]: values, or labels for classifiers) and, for classifiers, predict_proba ([rows, classes]).',
      },
    })

  return new Elysia({ name: 'inference' }).use(v1).use(v2)
}
