// Request and response schemas of /v1/models, /v1/predict and the /v2 Open Inference
// Protocol routes. Bodies holding feature values are deliberately loose: rows are checked by
// hand in one pass that writes straight into the kernel's input (see service.ts), so a
// 10 000-row batch never goes through an element-by-element schema walk.
import { Type } from '@sinclair/typebox'
import { t } from 'elysia'
import { namedValues } from '../platform/named-values'

/** Model names: what may appear in a URL and, with `.json`, as a file name in MODELS_DIR (never hidden). */
export const MODEL_NAME = '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$'
export const modelNamePattern = new RegExp(MODEL_NAME)
/** MODEL_NAME, and no name ending in .xgb: NAME.xgb.json is the booster file of the model NAME, so foo.xgb.json would be model foo's. */
export const MODEL_NAME_RULE = `${MODEL_NAME}, not ending in .xgb`
export const isModelName = (name: string) => modelNamePattern.test(name) && !/\.xgb$/i.test(name)
/** Most rows one prediction request may carry. */
export const MAX_ROWS = 10_000
/**
 * Most values one prediction may answer (rows × classes for a classifier): 10 000 rows of up to
 * 100 classes, or fewer rows of more; past it a batch is a 413, before anything runs.
 */
export const MAX_OUTPUT_VALUES = 1_000_000
/**
 * Most models served at once. Each holds kernel memory, a file to watch and a label set in every
 * metric series, so the folder and uploads are capped: past it a new name is refused, while an
 * existing one may still be replaced.
 */
export const MAX_MODELS = 100

/** A new model past MAX_MODELS. */
export class ModelLimitError extends Error {
  override name = 'ModelLimitError'
  override message = `at most ${MAX_MODELS} models are served at once; delete one first`
}

export const KINDS = ['linear', 'logistic', 'mlp', 'trees'] as const
export type Kind = (typeof KINDS)[number]

const Label = t.Union([t.String(), t.Number()], { description: 'A class label as the model file names it' })

const seedExample = {
  name: 'seed-linear',
  version: '1',
  kind: 'linear',
  description: "The seed's three-feature linear model",
  features: ['feature1', 'feature2', 'feature3'],
  coef: [0.5, 1.5, -2],
  intercept: 0.25,
}

export namespace InferenceModel {
  export const params = t.Object({
    name: t.String({ description: 'The model name (its file name in MODELS_DIR without .json)', examples: ['seed-linear'] }),
  })

  export const summary = t.Object({
    name: t.String(),
    version: t.String(),
    kind: t.Union([t.Literal('linear'), t.Literal('logistic'), t.Literal('mlp'), t.Literal('trees')]),
    features: t.Array(t.String(), { description: 'Feature names, in the order positional rows use' }),
    description: t.Optional(t.String()),
    classes: t.Optional(t.Array(Label, { description: 'Classifiers only: the labels, in the order of their probabilities' })),
    trees: t.Optional(t.Integer({ description: 'trees only: how many trees' })),
    nodes: t.Optional(t.Integer({ description: 'trees only: nodes of all trees together' })),
    outputs: t.Optional(t.Integer({ description: 'trees only: width of the raw score vector' })),
    source: t.Optional(t.Union([t.Literal('taskmesh'), t.Literal('xgboost_json')], {
      description: 'trees only: the service\'s own model file, or an XGBoost booster as saved (NAME.xgb.json)',
    })),
    missing: t.Optional(t.Boolean({ description: 'trees only: true when null in a row is a missing value the model routes' })),
  }, { title: 'ModelSummary' })
  export type Summary = typeof summary.static

  export const list = t.Object({
    items: t.Array(summary, { description: 'The models being served, by name' }),
    rejected: t.Array(t.Object({
      file: t.String({ description: 'File name in MODELS_DIR' }),
      message: t.String({ description: 'Why it was not loaded; a previous version of the model, if any, keeps serving' }),
    }), { description: 'Files in MODELS_DIR that failed validation' }),
  }, { title: 'ModelList' })
  export type List = typeof list.static

  /** A model file as PUT takes it; every value is checked by the registry, which names the bad field. */
  export const file = t.Object({
    name: t.Optional(t.Unknown({ description: `Must equal the name in the URL (${MODEL_NAME})` })),
    version: t.Optional(t.Unknown({ description: 'A non-empty string, reported with every prediction' })),
    kind: t.Optional(t.Unknown({ description: 'linear, logistic, mlp or trees' })),
    description: t.Optional(t.Unknown({ description: 'A string' })),
    features: t.Optional(t.Unknown({ description: 'Feature names: non-empty, unique strings, in the order of the coefficients' })),
    coef: t.Optional(t.Unknown({ description: 'linear: [n] numbers; logistic: [k][n], k = 1 for two classes, else one row per class' })),
    intercept: t.Optional(t.Unknown({ description: 'linear: a number; logistic: [k] numbers' })),
    classes: t.Optional(t.Unknown({ description: 'logistic and mlp classifiers: at least two unique labels (strings or numbers)' })),
    layers: t.Optional(t.Unknown({
      description: 'mlp: [{ weights: [n_in][n_out], bias: [n_out], activation: relu|tanh|sigmoid|identity|softmax }]; the first n_in is the number of features; '
        + 'the last layer has one output for a regressor, one sigmoid output for two classes, or one softmax output per class',
    })),
    outputs: t.Optional(t.Unknown({ description: 'trees: width of the raw score vector (1 for regression and binary)' })),
    comparison: t.Optional(t.Unknown({ description: 'trees: le32 (scikit-learn trees), le (HistGradientBoosting) or lt32 (XGBoost)' })),
    accumulate: t.Optional(t.Unknown({ description: 'trees: f64, or f32 (XGBoost)' })),
    aggregate: t.Optional(t.Unknown({ description: 'trees: sum or mean (random forests)' })),
    base: t.Optional(t.Unknown({ description: 'trees: [outputs] numbers added to the aggregate' })),
    link: t.Optional(t.Unknown({ description: 'trees: identity, sigmoid, softmax or normalize' })),
    trees: t.Optional(t.Unknown({ description: 'trees: [{ output, width, feature, threshold, left, right, missing_left?, value }], at most 1 000 000 nodes in all' })),
  }, {
    additionalProperties: true,
    title: 'ModelFile',
    description: 'A model file of this service (unknown fields are refused), or an XGBoost booster as save_model writes it (recognised by `learner`). '
      + 'Every number must be finite.',
    examples: [seedExample],
  })

  export const predictBody = t.Object({
    features: t.Optional(namedValues(t.Unknown({ description: 'A finite number; null is a missing value for tree models that learned where missing values go (summary `missing`)' }), {
      description: 'One row by feature name; every feature of the model, no other',
      examples: [{ feature1: 1, feature2: 2, feature3: 0.5 }],
    })),
    instances: t.Optional(t.Array(t.Unknown({
      description: 'A row: an array of finite numbers in the order of the model\'s features, or an object { feature: number } with every feature; '
        + 'null is a missing value for tree models that learned where missing values go (summary `missing`), a 422 for any other',
    }), { description: `1 to ${MAX_ROWS} rows` })),
  }, {
    additionalProperties: false,
    title: 'PredictRequest',
    description: 'Exactly one of `features` (one row) and `instances` (a batch).',
    examples: [{ features: { feature1: 1, feature2: 2, feature3: 0.5 } }, { instances: [[1, 2, 0.5], { feature1: 0, feature2: 1, feature3: 0 }] }],
  })
  export type PredictBody = typeof predictBody.static

  export const classification = t.Object({
    label: Label,
    probabilities: t.Record(t.String(), t.Number(), { description: 'Probability of each class, by label' }),
  }, { title: 'Classification' })

  export const prediction = t.Object({
    model: t.String(),
    version: t.String({ description: 'The version of the model that answered' }),
    predictions: t.Array(t.Union([t.Number(), classification]), { description: 'One per row, in order: a number for regressors, a label with probabilities for classifiers' }),
  }, { title: 'Predictions' })
  export type Prediction = typeof prediction.static

  const finite = (description: string) => t.Number({ description, error: 'must be a finite number' })

  export const seedBody = t.Object({
    feature1: finite('First feature of seed-linear'),
    feature2: finite('Second feature of seed-linear'),
    feature3: t.Optional(finite('Third feature of seed-linear; 0 when omitted')),
  }, { additionalProperties: false, title: 'SeedPredictRequest' })
  export type SeedBody = typeof seedBody.static

  export const seedPrediction = t.Object({
    prediction: t.Union([t.Number(), Label], { description: 'The value seed-linear predicts (its label, were it a classifier)' }),
  }, { title: 'SeedPrediction' })
}

/** The Open Inference Protocol (KServe v2) REST shapes, FP64 tensors. */
export namespace KServeModel {
  export const error = t.Object({ error: t.String({ description: 'What went wrong' }) }, { title: 'InferenceError' })

  export const live = t.Object({ live: t.Boolean() })
  export const ready = t.Object({ ready: t.Boolean() })
  export const modelReady = t.Object({ name: t.String(), ready: t.Boolean() })

  const Datatype = t.String({ description: 'FP64 (FP32 is accepted and computed in double precision)' })
  const Parameters = t.Record(t.String(), t.Unknown(), { description: 'Accepted and ignored' })

  const tensorMetadata = t.Object({
    name: t.String(),
    datatype: t.String({ description: 'FP64, or for the labels of a classifier BYTES (string labels) or INT64' }),
    shape: t.Array(Type.Integer(), { description: 'Variable dimensions are -1' }),
    parameters: t.Optional(t.Object({ features: t.Array(t.String(), { description: 'Column order of the input tensor' }) })),
  })

  export const metadata = t.Object({
    name: t.String(),
    versions: t.Array(t.String(), { description: 'The version being served' }),
    platform: t.String({
      description: 'taskmesh_wasm: a taskmesh model file of dense layers; taskmesh_trees: a taskmesh tree ensemble; '
        + 'xgboost_json: an XGBoost booster as saved. All run in the WebAssembly kernel',
    }),
    inputs: t.Array(tensorMetadata),
    outputs: t.Array(tensorMetadata),
    parameters: t.Optional(t.Object({
      kind: t.String({ description: 'The model kind: linear, logistic, mlp or trees' }),
      trees: t.Optional(t.Integer({ description: 'trees only: how many trees' })),
      nodes: t.Optional(t.Integer({ description: 'trees only: nodes of all trees together' })),
      outputs: t.Optional(t.Integer({ description: 'trees only: width of the raw score vector' })),
    }, { description: 'What the model is (the Open Inference Protocol\'s optional metadata parameters)' })),
  }, { title: 'ModelMetadata' })
  export type Metadata = typeof metadata.static

  export const inferBody = t.Object({
    id: t.Optional(t.String({ description: 'Echoed in the response' })),
    parameters: t.Optional(Parameters),
    inputs: t.Array(t.Object({
      name: t.String({ description: 'The model has one input (input-0); its name is not checked' }),
      shape: t.Array(t.Unknown(), { description: `[rows, features]: rows from 1 to ${MAX_ROWS}` }),
      datatype: Datatype,
      parameters: t.Optional(Parameters),
      data: t.Array(t.Unknown(), { description: 'Row-major finite numbers: flat (rows × features) or one array per row; null is a missing value for tree models that take them' }),
    }), { description: 'Exactly one input tensor' }),
    outputs: t.Optional(t.Array(t.Object({
      name: t.String({ description: 'predict, or for classifiers also predict_proba' }),
      parameters: t.Optional(Parameters),
    }), { description: 'The outputs to return; all of them when omitted' })),
  }, {
    title: 'InferenceRequest',
    examples: [{ id: '42', inputs: [{ name: 'input-0', shape: [2, 3], datatype: 'FP64', data: [1, 2, 0.5, 0, 1, 0] }] }],
  })
  export type InferBody = typeof inferBody.static

  export const output = t.Object({
    name: t.String({ description: 'predict (values or labels, [rows, 1]) or predict_proba (classifiers, [rows, classes])' }),
    shape: t.Array(Type.Integer()),
    datatype: t.String(),
    data: t.Array(t.Union([t.Number(), t.String()]), { description: 'Row-major, flat' }),
  })
  export type Output = typeof output.static

  export const inferResponse = t.Object({
    model_name: t.String(),
    model_version: t.String(),
    id: t.Optional(t.String()),
    outputs: t.Array(output),
  }, { title: 'InferenceResponse' })
  export type InferResponse = typeof inferResponse.static
}
