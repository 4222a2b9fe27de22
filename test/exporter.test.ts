// scripts/export-sklearn.py end to end: the hand-saved models in test/fixtures/trained and freshly fitted
// ones (test/fit-fixtures.py: fit → joblib → export) served by the app and compared with scikit-learn's own
// predictions; the refusals (exit code 2, one line); and the committed exports in test/fixtures/exported
// served from MODELS_DIR, which needs no Python.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { problemOf, tempDir as newTempDir, testApp, type TestApp } from './helpers'

const root = join(import.meta.dir, '..')
const exporter = join(root, 'scripts/export-sklearn.py')
const generator = join(import.meta.dir, 'fit-fixtures.py')
const exported = join(import.meta.dir, 'fixtures/exported')
const trained = join(import.meta.dir, 'fixtures/trained')
// scikit-learn's own results to 1e-8 relative (the target for scikit-learn models).
const REL = 1e-8

const scratch: string[] = []
/** A fresh folder, removed after the file's tests. */
function tempDir(prefix: string): string {
  scratch.push(newTempDir(prefix))
  return scratch.at(-1)!
}
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

/** The first python3 that imports scikit-learn: on PATH, else Debian's (python3-sklearn) when PATH has another. */
function findPython(): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    try {
      if (Bun.spawnSync([candidate, '-c', 'import sklearn'], { stdout: 'ignore', stderr: 'ignore' }).exitCode === 0) return candidate
    } catch {
      // not installed under that name
    }
  }
  return undefined
}

const python = findPython()
// In CI a missing python3-sklearn is a failure (.ci/run installs it), elsewhere a notice.
const withPython = python !== undefined || process.env.CI === 'true'
if (!withPython) console.warn('notice: no python3 with scikit-learn; skipping the exporter runs (CI runs them)')

interface Expected {
  inputs: Array<Array<number | null>>
  predictions?: number[]
  probabilities?: number[][]
  labels?: string[]
  features: string[]
  classes?: string[]
}
interface ModelJson { name: string; kind: string; features: string[]; classes?: string[]; trees?: unknown[]; [key: string]: unknown }
type Classification = { label: string; probabilities: Record<string, number> }

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const done = Bun.spawnSync([python ?? 'python3', ...args], { cwd: root })
  return { code: done.exitCode ?? -1, stdout: done.stdout.toString(), stderr: done.stderr.toString() }
}

const readJson = async <T>(path: string): Promise<T> => (await Bun.file(path).json()) as T
const namesIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.json') && !f.endsWith('.expected.json')).map((f) => f.slice(0, -'.json'.length)).sort()

/** Where a served value is off by more than REL relative, as "row i[ column]: got vs want". */
function mismatches(got: number[], want: number[], where: (i: number) => string): string[] {
  expect(got.length).toBe(want.length)
  return want.flatMap((w, i) => {
    const g = got[i]!
    return typeof g === 'number' && Math.abs(g - w) <= Math.max(REL * Math.abs(w), 1e-300) ? [] : [`${where(i)}: ${g} vs ${w}`]
  })
}

/** Predicts every expected input through /v1 and compares it with the library's own outputs. */
async function expectServed(t: TestApp, key: string, model: ModelJson, expected: Expected): Promise<void> {
  const response = await t.request(`/v1/models/${model.name}/predict`, { method: 'POST', key, json: { instances: expected.inputs } })
  const text = await response.text()
  expect(response.status, `${model.name}: ${text}`).toBe(200)
  const { predictions } = JSON.parse(text) as { predictions: Array<number | Classification> }
  if (expected.predictions) {
    expect(mismatches(predictions as number[], expected.predictions, (i) => `${model.name} row ${i}`)).toEqual([])
    return
  }
  const classes = model.classes!
  const served = predictions as Classification[]
  const got = served.flatMap((p) => classes.map((c) => p.probabilities[c]!))
  expect(mismatches(got, expected.probabilities!.flat(), (i) => `${model.name} row ${Math.floor(i / classes.length)} ${classes[i % classes.length]}`)).toEqual([])
  // Labels wherever the top probability is not tied (a tie is broken by each side's own argmax).
  const untied = expected.probabilities!.map((p) => [...p].sort((a, b) => b - a)).map((p) => p.length < 2 || p[0]! - p[1]! > 1e-12)
  expect(served.map((p, i) => (untied[i] ? p.label : '(tied)'))).toEqual(expected.labels!.map((l, i) => (untied[i] ? l : '(tied)')))
}

/** The expected.json of an exported model: beside it, or in test/fixtures/trained for the hand-saved ones. */
async function expectedFor(dir: string, name: string): Promise<Expected> {
  const beside = Bun.file(join(dir, `${name}.expected.json`))
  return (await beside.exists()) ? ((await beside.json()) as Expected) : readJson<Expected>(join(trained, `${name}.expected.json`))
}

/** Serves every exported model of `dir` from MODELS_DIR and compares each with its expected.json. */
async function expectFolderServed(dir: string, names: string[]): Promise<void> {
  const models = tempDir('taskmesh-exported-')
  for (const name of names) copyFileSync(join(dir, `${name}.json`), join(models, `${name}.json`))
  await using t = await testApp({ MODELS_DIR: models })
  const key = await t.key()
  const listed = (await (await t.request('/v1/models', { key })).json()) as { items: Array<{ name: string }> }
  expect(listed.items.map((m) => m.name).sort()).toEqual([...names].sort())
  for (const name of names) await expectServed(t, key, await readJson<ModelJson>(join(dir, `${name}.json`)), await expectedFor(dir, name))
}

const committed = namesIn(exported)
const kindOf = (name: string) => (JSON.parse(readFileSync(join(exported, `${name}.json`), 'utf8')) as ModelJson).kind
const isTrees = (name: string) => kindOf(name) === 'trees'

describe('the committed exports (test/fixtures/exported) served from MODELS_DIR', () => {
  test('cover every estimator family, objective and missing values', () => {
    const kinds = new Set(committed.map((n) => n.split('-')[0]))
    for (const family of ['linear', 'ridge', 'lasso', 'elasticnet', 'logistic', 'mlp', 'tree', 'forest', 'extra', 'gbr', 'gbc', 'hgb', 'scaled']) expect(kinds).toContain(family)
    expect(committed).toContain('hgb-cancer')
    // Scalers fold into linear and logistic models, unless folding costs precision: then they stay as layers of an mlp.
    expect(['linear-diabetes', 'minmax-linear-diabetes', 'logistic-cancer', 'scaled-logistic-iris', 'offset-ridge-diabetes', 'mlp-iris', 'gbc-iris'].map(kindOf))
      .toEqual(['linear', 'linear', 'logistic', 'logistic', 'mlp', 'mlp', 'trees'])
    expect(committed).toEqual(expect.arrayContaining(['diabetes-gbr', 'diabetes-scaled-ridge', 'iris-forest']))
  })

  test('dense models (linear, logistic, mlp) match scikit-learn to 1e-8', async () => {
    await expectFolderServed(exported, committed.filter((n) => !isTrees(n)))
  })

  test('tree models (trees, forests, boosting, with scalers folded) match scikit-learn to 1e-8, labels equal', async () => {
    await expectFolderServed(exported, committed.filter(isTrees))
  })

  test('a null goes where HistGradientBoosting learned; a model that learned nothing about missing values answers 422', async () => {
    await using t = await testApp({ MODELS_DIR: tempDir('taskmesh-exported-') })
    const admin = await t.key(undefined, ['admin', 'predict'])
    for (const name of ['hgb-cancer', 'forest-cancer']) {
      const body = await Bun.file(join(exported, `${name}.json`)).text()
      expect((await t.request(`/v1/models/${name}`, { method: 'PUT', key: admin, body, headers: { 'content-type': 'application/json' } })).status).toBe(201)
    }
    const expected = await readJson<Expected>(join(exported, 'hgb-cancer.expected.json'))
    const withNull = expected.inputs.findIndex((row) => row.includes(null))
    expect(withNull).toBeGreaterThanOrEqual(0)
    const hgb = await readJson<ModelJson>(join(exported, 'hgb-cancer.json'))
    await expectServed(t, admin, hgb, { ...expected, inputs: [expected.inputs[withNull]!], probabilities: [expected.probabilities![withNull]!], labels: [expected.labels![withNull]!] })
    const row = [...expected.inputs[withNull]!]
    const response = await t.request('/v1/models/forest-cancer/predict', { method: 'POST', key: admin, json: { instances: [row] } })
    expect(response.status).toBe(422)
    await problemOf(response)
  })
})

describe('the saved model itself', () => {
  test('PUT of the .joblib (a pickle) is a 415 that points to the exporter, and nothing is loaded', async () => {
    await using t = await testApp({ MODELS_DIR: tempDir('taskmesh-exported-') })
    const admin = await t.key(undefined, ['admin'])
    for (const type of ['application/octet-stream', 'application/json']) {
      const body = await Bun.file(join(trained, 'iris-forest.joblib')).arrayBuffer()
      const response = await t.request('/v1/models/iris-forest', { method: 'PUT', key: admin, body, headers: { 'content-type': type } })
      expect(response.status).toBe(415)
      expect((await problemOf(response)).detail).toContain('scripts/export-sklearn.py')
    }
    expect((await t.request('/v1/models/iris-forest', { key: admin })).status).toBe(404)
  })
})

describe.if(withPython)('scripts/export-sklearn.py on saved models', () => {
  test('exports the hand-saved fixtures as committed, and PUT serves them as scikit-learn predicts', async () => {
    await using t = await testApp({ MODELS_DIR: tempDir('taskmesh-exported-') })
    const admin = await t.key(undefined, ['admin', 'predict'])
    for (const name of ['diabetes-gbr', 'diabetes-scaled-ridge', 'iris-forest']) {
      const expected = await readJson<Expected>(join(trained, `${name}.expected.json`))
      const args = [exporter, join(trained, `${name}.joblib`), '--features', expected.features.join(',')]
      if (expected.classes) args.push('--classes', expected.classes.join(','))
      const done = run(args)
      expect(done.stderr).toBe('')
      expect(done.code).toBe(0)
      const model = JSON.parse(done.stdout) as ModelJson
      // The name defaults to the file's stem; the description names the library's version, so it is left out.
      const { description: _, ...rest } = model
      const { description: __, ...want } = await readJson<ModelJson>(join(exported, `${name}.json`))
      expect(rest).toEqual(want)
      expect(model.features).toEqual(expected.features)
      const response = await t.request(`/v1/models/${name}`, { method: 'PUT', key: admin, body: done.stdout, headers: { 'content-type': 'application/json' } })
      expect(response.status, await response.clone().text()).toBe(201)
      await expectServed(t, admin, model, expected)
    }
    // Without --features and --classes (these were fitted on bare arrays): x0, x1, … and the estimator's own labels.
    const bare = JSON.parse(run([exporter, join(trained, 'diabetes-gbr.joblib')]).stdout) as ModelJson
    expect(bare).toMatchObject({ name: 'diabetes-gbr', kind: 'trees', features: ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8', 'x9'] })
    expect(bare.trees).toHaveLength(100)
    expect(JSON.parse(run([exporter, join(trained, 'iris-forest.joblib'), '--name', 'flowers']).stdout)).toMatchObject({ name: 'flowers', classes: ['0', '1', '2'] })
  }, 60_000)

  test('fits every supported estimator, saves, exports and serves it within 1e-8 of scikit-learn', async () => {
    const out = tempDir('taskmesh-fit-')
    const saved = join(out, 'joblib')
    const done = run([generator, '--out', out, '--joblib', saved])
    expect(done.stderr).toBe('')
    expect(done.code).toBe(0)
    const names = namesIn(out)
    expect(names).toEqual(committed)
    // The command line prints what the generator's in-process export wrote, for one model of each kind.
    for (const name of ['linear-diabetes', 'scaled-logistic-iris', 'mlp-cancer', 'hgb-iris', 'scaled-tree-iris']) {
      const model = await readJson<ModelJson>(join(out, `${name}.json`))
      const cli = run([exporter, join(saved, `${name}.joblib`), '--features', model.features.join(','), ...(model.classes ? ['--classes', model.classes.join(',')] : [])])
      expect(cli.code).toBe(0)
      expect(JSON.parse(cli.stdout)).toEqual(model)
    }
    await expectFolderServed(out, names)
  }, 120_000)
})

/** Fits each snippet (Python leaving the estimator in `model`, with iris in X, y) in one Python run; the saved paths. */
function fitAll(fits: string[]): string[] {
  const dir = tempDir('taskmesh-refuse-')
  const paths = fits.map((_, i) => join(dir, `model-${i}.joblib`))
  const script = [
    'import json, sys, joblib, numpy as np',
    'from sklearn import datasets',
    'for path, code in json.loads(sys.argv[1]):',
    '    X, y = datasets.load_iris(return_X_y=True)',
    "    scope = {'X': X, 'y': y, 'np': np}",
    '    exec(code, scope)',
    "    joblib.dump(scope['model'], path)",
  ]
  const saved = run(['-c', script.join('\n'), JSON.stringify(paths.map((path, i) => [path, fits[i]]))])
  if (saved.code !== 0) throw new Error(`fitting the models failed: ${saved.stderr}`)
  return paths
}

describe.if(withPython)('scripts/export-sklearn.py names', () => {
  test('--help says labels are served as strings ("0", "1", "2")', () => {
    const done = run([exporter, '--help'])
    expect(done.code).toBe(0)
    expect(done.stdout.replace(/\s+/g, ' ')).toContain('Class labels are written, and served, as strings: a model fitted on labels 0, 1, 2 answers "0", "1", "2".')
  })

  test("features default to the model's feature_names_in_ (a model fitted on a table with column names)", () => {
    // The smallest table scikit-learn takes column names from (pandas is not installed here): `columns` and __array__.
    const [path] = fitAll([[
      'from sklearn.pipeline import make_pipeline',
      'from sklearn.preprocessing import StandardScaler',
      'from sklearn.tree import DecisionTreeRegressor',
      'class Table:',
      '    def __init__(self, a, columns): self.a, self.columns = a, columns',
      '    def __array__(self, dtype=None): return self.a if dtype is None else self.a.astype(dtype)',
      '    def __len__(self): return len(self.a)',
      'model = make_pipeline(StandardScaler(), DecisionTreeRegressor(max_depth=2)).fit(Table(X, ["sl", "sw", "pl", "pw"]), y)',
    ].join('\n')])
    const done = run([exporter, path!])
    expect(done.stderr).toBe('')
    expect(JSON.parse(done.stdout)).toMatchObject({ name: 'model-0', kind: 'trees', features: ['sl', 'sw', 'pl', 'pw'], comparison: 'le' })
  }, 30_000)
})

describe.if(withPython)('scripts/export-sklearn.py refuses what it cannot export faithfully: exit code 2, one line naming it', () => {
  const cases: Array<[string, string, string]> = [
    ['SVC', 'from sklearn.svm import SVC\nmodel = SVC().fit(X, y)', 'SVC'],
    ['KNeighborsClassifier', 'from sklearn.neighbors import KNeighborsClassifier\nmodel = KNeighborsClassifier().fit(X, y)', 'KNeighborsClassifier'],
    ['a categorical HistGradientBoosting', 'from sklearn.ensemble import HistGradientBoostingClassifier\nX[:, 0] = np.arange(len(X)) % 4\nmodel = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(X, y)', 'categorical'],
    ['an unsupported Pipeline step', 'from sklearn.pipeline import make_pipeline\nfrom sklearn.decomposition import PCA\nfrom sklearn.linear_model import Ridge\nmodel = make_pipeline(PCA(2), Ridge()).fit(X, y)', 'PCA'],
    ['one-vs-rest LogisticRegression', 'from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(solver="liblinear").fit(X, y)', 'one-vs-rest'],
    // scikit-learn ≥ 1.5 saves multi_class='deprecated', which acts as 'auto': liblinear on three classes is one-vs-rest.
    ['one-vs-rest LogisticRegression saved with multi_class "deprecated"', 'from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(solver="liblinear").fit(X, y)\nmodel.multi_class = "deprecated"', 'one-vs-rest'],
    ['GradientBoosting with its own init estimator', 'from sklearn.ensemble import GradientBoostingRegressor\nfrom sklearn.linear_model import LinearRegression\nmodel = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, y)', 'init=LinearRegression'],
    ['a Poisson HistGradientBoosting', 'from sklearn.ensemble import HistGradientBoostingRegressor\nmodel = HistGradientBoostingRegressor(max_iter=3, loss="poisson").fit(X, y + 1)', 'poisson'],
    ['an estimator that was never fitted', 'from sklearn.ensemble import RandomForestClassifier\nmodel = RandomForestClassifier()', 'not fitted'],
    ['a multi-output regressor', 'from sklearn.tree import DecisionTreeRegressor\nmodel = DecisionTreeRegressor(max_depth=2).fit(X[:, :2], X[:, 2:])', 'outputs'],
  ]
  let fitted: string[] = []
  beforeAll(() => {
    fitted = fitAll([...cases.map(([, fit]) => fit), 'from sklearn.tree import DecisionTreeClassifier\nmodel = DecisionTreeClassifier(max_depth=2).fit(X, y)'])
  }, 60_000)
  for (const [i, [what, , named]] of cases.entries()) {
    test(what, () => {
      const done = run([exporter, fitted[i]!])
      expect(done.code).toBe(2)
      expect(done.stdout).toBe('')
      expect(done.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(done.stderr).toContain(named)
    }, 30_000)
  }

  test('--features or --classes of the wrong length: exit code 2, one line', () => {
    for (const extra of [['--features', 'a,b'], ['--classes', 'x,y']]) {
      const done = run([exporter, fitted.at(-1)!, ...extra])
      expect(done.code).toBe(2)
      expect(done.stderr.trimEnd().split('\n')).toHaveLength(1)
    }
  }, 30_000)

  test('a file that is not a saved model: exit code 1, one line', () => {
    const path = join(tempDir('taskmesh-refuse-'), 'notes.pkl')
    writeFileSync(path, 'not a pickle')
    const done = run([exporter, path])
    expect(done.code).toBe(1)
    expect(done.stdout).toBe('')
    expect(done.stderr.trimEnd().split('\n')).toHaveLength(1)
  })
})
