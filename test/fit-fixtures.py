#!/usr/bin/env python3
"""Fit every estimator scripts/export-sklearn.py supports, export each, and write the fixtures the tests serve.

    python3 test/fit-fixtures.py [--out test/fixtures/exported] [--joblib DIR]

Fits on scikit-learn's bundled datasets (diabetes, breast cancer, iris; HistGradientBoosting with missing
values), saves each model with joblib.dump, loads the saved file and exports it with the exporter's own
export() (test/exporter.test.ts runs its command line on these files too), and writes OUT/NAME.json (the exported model) and OUT/NAME.expected.json (inputs, null = missing, with the
library's own predictions, or probabilities and labels). Before writing, it evaluates each exported file
with a plain reference of the service's model format (below) and fails if that differs from the library
by more than 1e-8 relative. Deterministic: every random_state is fixed.
"""
import argparse
import importlib.util
import json
import math
import pathlib
import tempfile
import warnings

import joblib
import numpy as np
import sklearn
from sklearn import datasets
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                              GradientBoostingRegressor, HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPORTER = ROOT / 'scripts' / 'export-sklearn.py'
TRAINED = ROOT / 'test' / 'fixtures' / 'trained'
TOLERANCE = 1e-8
R = 0  # every random_state


def cases():
    """(name, data set, model, with missing values, features named on the command line)."""
    return [
        ('linear-diabetes', 'diabetes', LinearRegression(), False, True),
        ('ridge-diabetes', 'diabetes', Ridge(alpha=0.5), False, True),
        ('lasso-diabetes', 'diabetes', Lasso(alpha=0.05), False, True),
        ('elasticnet-diabetes', 'diabetes', ElasticNet(alpha=0.001, l1_ratio=0.3), False, False),
        ('minmax-linear-diabetes', 'diabetes', make_pipeline(MinMaxScaler(), LinearRegression()), False, True),
        # Features far from zero: folding the scaler into Ridge would cost 4e-8; the exporter keeps it as layers.
        ('offset-ridge-diabetes', 'diabetes+1e7', make_pipeline(StandardScaler(), Ridge()), False, True),
        ('mlp-diabetes', 'diabetes', make_pipeline(StandardScaler(), MLPRegressor((8, 4), max_iter=200, random_state=R)), False, True),
        ('tree-diabetes', 'diabetes', DecisionTreeRegressor(max_depth=4, random_state=R), False, True),
        ('forest-diabetes', 'diabetes', RandomForestRegressor(8, max_depth=4, random_state=R), False, True),
        ('extra-trees-diabetes', 'diabetes', ExtraTreesRegressor(8, max_depth=4, random_state=R), False, True),
        ('gbr-diabetes', 'diabetes', GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=R), False, True),
        ('gbr-zero-init-diabetes', 'diabetes', GradientBoostingRegressor(n_estimators=20, init='zero', random_state=R), False, True),
        ('gbr-huber-diabetes', 'diabetes', GradientBoostingRegressor(loss='huber', n_estimators=15, random_state=R), False, False),
        ('gbr-absolute-diabetes', 'diabetes', GradientBoostingRegressor(loss='absolute_error', n_estimators=10, random_state=R), False, True),
        ('gbr-quantile-diabetes', 'diabetes', GradientBoostingRegressor(loss='quantile', alpha=0.8, n_estimators=10, random_state=R), False, True),
        ('hgb-absolute-diabetes', 'diabetes', HistGradientBoostingRegressor(loss='absolute_error', max_iter=10, random_state=R), True, True),
        ('hgb-quantile-diabetes', 'diabetes', HistGradientBoostingRegressor(loss='quantile', quantile=0.3, max_iter=10, random_state=R), True, True),
        ('gbc-zero-init-cancer', 'cancer', GradientBoostingClassifier(init='zero', n_estimators=10, max_depth=2, random_state=R), False, True),
        ('hgb-diabetes', 'diabetes', HistGradientBoostingRegressor(max_iter=20, max_depth=4, random_state=R), True, True),
        ('scaled-forest-diabetes', 'diabetes', make_pipeline(StandardScaler(), RandomForestRegressor(6, max_depth=5, random_state=R)), False, True),
        ('scaled-hgb-diabetes', 'diabetes', make_pipeline(MinMaxScaler(), HistGradientBoostingRegressor(max_iter=15, random_state=R)), True, True),
        ('logistic-cancer', 'cancer', make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), False, True),
        ('multinomial-logistic-cancer', 'cancer', make_pipeline(MinMaxScaler(), LogisticRegression(multi_class='multinomial', max_iter=1000)), False, True),
        ('mlp-cancer', 'cancer', make_pipeline(StandardScaler(), MLPClassifier((8,), activation='tanh', max_iter=300, random_state=R)), False, True),
        ('tree-cancer', 'cancer', DecisionTreeClassifier(max_depth=4, random_state=R), False, True),
        ('forest-cancer', 'cancer', RandomForestClassifier(8, max_depth=4, random_state=R), False, True),
        ('extra-trees-cancer', 'cancer', ExtraTreesClassifier(8, max_depth=4, random_state=R), False, False),
        ('gbc-cancer', 'cancer', GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=R), False, True),
        ('gbc-exponential-cancer', 'cancer', GradientBoostingClassifier(loss='exponential', n_estimators=15, max_depth=2, random_state=R), False, True),
        ('hgb-cancer', 'cancer', HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=R), True, True),
        ('logistic-iris', 'iris', LogisticRegression(max_iter=1000), False, True),
        ('scaled-logistic-iris', 'iris', make_pipeline(StandardScaler(), MinMaxScaler(), LogisticRegression(max_iter=1000)), False, True),
        ('mlp-iris', 'iris', make_pipeline(MinMaxScaler(), MLPClassifier((6,), activation='logistic', max_iter=500, random_state=R)), False, True),
        ('tree-iris', 'iris', DecisionTreeClassifier(max_depth=3, random_state=R), False, True),
        ('scaled-tree-iris', 'iris', make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=4, random_state=R)), False, True),
        ('extra-trees-iris', 'iris', ExtraTreesClassifier(6, max_depth=4, random_state=R), False, True),
        ('gbc-iris', 'iris', GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=R), False, True),
        ('hgb-iris', 'iris', HistGradientBoostingClassifier(max_iter=10, max_depth=3, random_state=R), True, True),
    ]


def dataset(which, missing):
    """(X, y, feature names, class names, 40 rows to predict) for one bundled data set ("name+offset": shifted)."""
    which, _, offset = which.partition('+')
    loaded = {'diabetes': datasets.load_diabetes, 'cancer': datasets.load_breast_cancer, 'iris': datasets.load_iris}[which]()
    X, y = loaded.data.astype(np.float64) + float(offset or 0), loaded.target
    names = [str(f) for f in loaded.feature_names]
    classes = [str(c) for c in loaded.target_names] if which != 'diabetes' else None
    rng = np.random.default_rng(7)
    if missing:
        X = X.copy()
        X[rng.random(X.shape) < 0.1] = np.nan
    # Rows the model saw, and rows between them (off the training values, where thresholds bite).
    seen = X[rng.choice(len(X), 20, replace=False)]
    a, b = X[rng.choice(len(X), 20)], X[rng.choice(len(X), 20)]
    mixed = np.where(np.isnan(a) | np.isnan(b), np.nan, a + rng.random(a.shape) * (b - a))
    return X, y, names, classes, np.vstack([seen, mixed])


# A plain reference of the service's model file, trees as the format's spec defines them (the
# comparisons in float32 or float64, the aggregate, base and link), to check exports without the service.

def sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def softmax(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def goes_left(comparison, x, threshold):
    if comparison == 'le32':
        return float(np.float32(x)) <= threshold
    if comparison == 'lt32':
        return float(np.float32(x)) < float(np.float32(threshold))
    return x <= threshold


def trees_raw(model, row):
    k, f32 = model['outputs'], model['accumulate'] == 'f32'
    total = [np.float32(0) if f32 else 0.0 for _ in range(k)]
    for tree in model['trees']:
        node = 0
        while tree['feature'][node] >= 0:
            x = row[tree['feature'][node]]
            if x is None:
                left = tree['missing_left'][node]  # a KeyError here: this model takes no missing values
            else:
                left = goes_left(model['comparison'], x, tree['threshold'][node])
            node = tree['left'][node] if left else tree['right'][node]
        for j in range(tree['width']):
            leaf = tree['value'][node * tree['width'] + j]
            total[tree['output'] + j] = total[tree['output'] + j] + (np.float32(leaf) if f32 else leaf)
    if model['aggregate'] == 'mean':
        total = [t / len(model['trees']) for t in total]
    return [float(t) + b for t, b in zip(total, model['base'])]


def dense_raw(model, row):
    if model['kind'] == 'linear':
        return [sum(c * x for c, x in zip(model['coef'], row)) + model['intercept']]
    if model['kind'] == 'logistic':
        z = [sum(c * x for c, x in zip(coef, row)) + b for coef, b in zip(model['coef'], model['intercept'])]
        return [sigmoid(z[0])] if len(z) == 1 else softmax(z)
    x = row
    for layer in model['layers']:
        z = [sum(x[i] * layer['weights'][i][j] for i in range(len(x))) + b for j, b in enumerate(layer['bias'])]
        act = layer['activation']
        x = (softmax(z) if act == 'softmax' else [sigmoid(v) if act == 'sigmoid' else math.tanh(v) if act == 'tanh'
             else max(v, 0.0) if act == 'relu' else v for v in z])
    return x


def reference(model, row):
    """One row through the model file as the format defines it: a number, or the class probabilities."""
    if model['kind'] != 'trees':
        out = dense_raw(model, row)
    else:
        raw = trees_raw(model, row)
        link = model['link']
        out = ([sigmoid(v) for v in raw] if link == 'sigmoid' else softmax(raw) if link == 'softmax'
               else [v / sum(raw) for v in raw] if link == 'normalize' else raw)
    if 'classes' not in model:
        return out[0]
    return [1 - out[0], out[0]] if len(out) == 1 else out


def close(a, b):
    return abs(a - b) <= TOLERANCE * abs(b) or abs(a - b) <= 1e-300


def exporter():
    """scripts/export-sklearn.py as a module (its file name is not an identifier)."""
    spec = importlib.util.spec_from_file_location('export_sklearn', EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edge_rows(exported, rows, count=10):
    """Rows with a feature exactly on a split threshold and one step above it, where comparisons differ."""
    if exported['kind'] != 'trees':
        return np.empty((0, rows.shape[1]))
    splits = [(f, t) for tree in exported['trees'] for f, t in zip(tree['feature'], tree['threshold'])
              if f >= 0 and abs(t) < 1e300]
    edges = []
    for i, (f, t) in enumerate(splits[::max(1, len(splits) // count)][:count]):
        for x in (t, np.nextafter(t, np.inf)):
            row = rows[i % len(rows)].copy()
            row[f] = x
            edges.append(row)
    return np.array(edges)


def expected_of(name, model, inputs, classes, estimator):
    rows = [[None if math.isnan(v) else float(v) for v in row] for row in inputs]
    out = {'model': name, 'inputs': rows}
    if classes is None:
        out['predictions'] = model.predict(inputs).astype(np.float64).tolist()
    else:
        out['probabilities'] = model.predict_proba(inputs).tolist()
        out['labels'] = [classes[int(i)] for i in model.predict(inputs)]
        out['classes'] = classes
    return {**out, 'library': f'scikit-learn {sklearn.__version__}', 'estimator': estimator}


def check(name, exported, expected):
    """The exported file, run by the reference, against the library's own outputs."""
    for i, row in enumerate(expected['inputs']):
        got = reference(exported, row)
        if 'predictions' in expected:
            want, got = [expected['predictions'][i]], [got]
        else:
            want = expected['probabilities'][i]
        if not all(close(g, w) for g, w in zip(got, want)):
            raise SystemExit(f'{name}: row {i}: the exported model gives {got}, scikit-learn {want}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=str(ROOT / 'test' / 'fixtures' / 'exported'))
    parser.add_argument('--joblib', help='keep the saved models here (default: a temporary folder)')
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter('ignore')  # convergence warnings of the deliberately small networks
    export = exporter().export
    with tempfile.TemporaryDirectory() as scratch:
        saved = pathlib.Path(args.joblib or scratch)
        saved.mkdir(parents=True, exist_ok=True)
        for name, which, model, missing, named in cases():
            X, y, features, classes, inputs = dataset(which, missing)
            model.fit(X, y)
            path = saved / f'{name}.joblib'
            joblib.dump(model, path)
            # What the exporter reads: the saved file, as the user's would be.
            exported = export(joblib.load(path), name, features if named else None, classes)
            inputs = np.vstack([inputs, edge_rows(exported, inputs)])
            estimator = '+'.join(type(s).__name__ for _, s in model.steps) if hasattr(model, 'steps') else type(model).__name__
            expected = expected_of(name, model, inputs, classes, estimator)
            expected['features'] = exported['features']
            check(name, exported, expected)
            (out / f'{name}.json').write_text(json.dumps(exported) + '\n')
            (out / f'{name}.expected.json').write_text(json.dumps(expected) + '\n')
            print(f'{name}: {exported["kind"]}, {len(inputs)} rows within {TOLERANCE} of scikit-learn')
    # The models saved by hand in test/fixtures/trained, named as their expected.json names them.
    for path in sorted(TRAINED.glob('*.joblib')):
        name = path.name[:-len('.joblib')]
        expected = json.loads((TRAINED / f'{name}.expected.json').read_text())
        exported = export(joblib.load(path), name, expected['features'], expected.get('classes'))
        check(name, exported, expected)
        (out / f'{name}.json').write_text(json.dumps(exported) + '\n')
        print(f'{name} (test/fixtures/trained): {exported["kind"]}, {len(expected["inputs"])} rows within {TOLERANCE} of scikit-learn')


if __name__ == '__main__':
    main()
