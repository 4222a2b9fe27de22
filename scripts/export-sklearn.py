#!/usr/bin/env python3
"""Print a scikit-learn model as this service's own model file (JSON) on standard output.

    python3 scripts/export-sklearn.py MODEL.joblib [--name NAME] [--features a,b,...] [--classes x,y,...]

Needs Python 3 and scikit-learn >= 1.2 (joblib and numpy come with it), nothing else.

This script loads MODEL with joblib, that is, it unpickles it: unpickling runs whatever code the file
names, so run it only on a model you trust (your own), on your own machine. The service itself never
unpickles anything; it serves the JSON printed here.

Supported, alone or after StandardScaler / MinMaxScaler steps in a Pipeline:
  LinearRegression, Ridge, Lasso, ElasticNet        -> kind "linear"
  LogisticRegression (binary, multinomial)          -> kind "logistic"
  MLPRegressor, MLPClassifier                        -> kind "mlp"
  DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*, HistGradientBoosting*
  (regression, binary, multiclass; numerical features) -> kind "trees"
Scalers before a dense model are folded into its first layer when that reproduces the pipeline to
1e-9 on probe rows, else kept as steps: identity layers first in an "mlp" (x - mean exactly, then
times 1 / scale). Before trees, each threshold is moved
onto the raw feature: the exact float64 value where the scaled (and, for the float32 trees, rounded)
feature crosses it, found by bisection, so the folded model routes every row as the pipeline does.
Class labels are written as strings (str() of each of classes_), as the service answers them: a model
fitted on 0, 1, 2 predicts "0", "1", "2".
Anything else: exit code 2 and one line on standard error naming it.
"""
import argparse
import json
import pathlib
import sys

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

DENSE = {'LinearRegression', 'Ridge', 'Lasso', 'ElasticNet', 'LogisticRegression', 'MLPRegressor', 'MLPClassifier'}
FORESTS = {'RandomForestRegressor', 'RandomForestClassifier', 'ExtraTreesRegressor', 'ExtraTreesClassifier'}
TREES = {'DecisionTreeRegressor', 'DecisionTreeClassifier', 'GradientBoostingRegressor', 'GradientBoostingClassifier',
         'HistGradientBoostingRegressor', 'HistGradientBoostingClassifier'} | FORESTS
SCALERS = {'StandardScaler', 'MinMaxScaler'}
ACTIVATIONS = {'identity': 'identity', 'relu': 'relu', 'tanh': 'tanh', 'logistic': 'sigmoid', 'softmax': 'softmax'}
BIGGEST = np.finfo(np.float64).max


class Unsupported(Exception):
    """A model this script cannot export faithfully; its message is the one line printed."""


def kind_of(obj):
    return type(obj).__name__


def scale(scalers, x, f):
    """Feature f of rows x after the scalers, with the operations their transform() uses."""
    for s in scalers:
        if kind_of(s) == 'StandardScaler':
            if s.with_mean:
                x = x - s.mean_[f]
            if s.with_std:
                x = x / s.scale_[f]
        else:
            x = x * s.scale_[f] + s.min_[f]
            if s.clip:
                x = np.clip(x, s.feature_range[0], s.feature_range[1])
    return x


def affine(scalers, n):
    """The scalers as x' = a * x + c per feature (dense models only; a clipping MinMaxScaler is not affine)."""
    a, c = np.ones(n), np.zeros(n)
    for s in scalers:
        if kind_of(s) == 'StandardScaler':
            m = s.mean_ if s.with_mean else np.zeros(n)
            d = s.scale_ if s.with_std else np.ones(n)
            a, c = a / d, (c - m) / d
        else:
            if s.clip:
                raise Unsupported('MinMaxScaler(clip=True) before a dense model is not supported')
            a, c = a * s.scale_, c * s.scale_ + s.min_
    return a, c


def step_layers(scalers, n):
    """The scalers as identity layers computing what transform() computes: x - mean, then / scale, or x * scale + min."""
    layers = []
    for s in scalers:
        if kind_of(s) == 'StandardScaler':
            if s.with_mean:
                layers.append((np.eye(n), -s.mean_, 'identity'))
            if s.with_std:
                layers.append((np.diag(1 / s.scale_), np.zeros(n), 'identity'))
        else:
            layers.append((np.diag(s.scale_), s.min_, 'identity'))
    return layers


def probe_rows(scalers, n):
    """Rows over the range the first scaler saw, to check a folded model against the pipeline."""
    s = scalers[0]
    if kind_of(s) == 'StandardScaler':
        centre = s.mean_ if s.mean_ is not None else np.zeros(n)
        spread = 3 * (s.scale_ if s.scale_ is not None else np.ones(n))
        low, high = centre - spread, centre + spread
    else:
        low, high = s.data_min_, s.data_max_
    return np.random.default_rng(0).uniform(low, high, size=(64, n))


def fold_thresholds(scalers, features, thresholds, float32):
    """The largest float64 x per split node that still goes left after the scalers (bisection over float64 order)."""
    def left(x):
        z = scale(scalers, x, features)
        return (z.astype(np.float32) if float32 else z) <= thresholds

    def to_float(key):  # an order-preserving int64 key back to its float64
        bits = np.where(key >= 0, key, np.int64(-2**63) - key - 1)
        return bits.view(np.float64)

    def to_key(x):
        bits = x.view(np.int64)
        return np.where(bits >= 0, bits, np.int64(-2**63) - bits - 1)

    lo = to_key(np.full(len(features), -BIGGEST))  # goes left: the scaled value is -inf or tiny
    hi = to_key(np.full(len(features), BIGGEST))
    with np.errstate(all='ignore'):
        if not left(to_float(lo)).all() or left(to_float(hi)).any():
            raise Unsupported('a split that every value (or none) takes cannot be folded through the scaler')
        while (hi > lo + 1).any():  # invariant: lo goes left, hi goes right
            mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # the floor of the mean, without overflowing int64
            go = left(to_float(mid))
            lo, hi = np.where(go, mid, lo), np.where(go, hi, mid)
    return to_float(lo)


def dense_layers(est):
    """The estimator as dense layers [(weights [n_in][n_out], bias, activation)]."""
    name = kind_of(est)
    if name == 'LogisticRegression':
        multi = getattr(est, 'multi_class', 'auto')
        # scikit-learn >= 1.5 deprecates the parameter: its default 'deprecated' behaves as 'auto'.
        multi = 'auto' if multi == 'deprecated' else multi
        if len(est.classes_) > 2 and (multi == 'ovr' or (multi == 'auto' and est.solver == 'liblinear')):
            raise Unsupported('LogisticRegression with one-vs-rest multiclass is not supported (use multinomial)')
        if len(est.classes_) == 2:
            # A binary multinomial model answers softmax([-z, z]), which is sigmoid(2z).
            factor = 2.0 if multi == 'multinomial' else 1.0
            return [(factor * est.coef_.T, factor * est.intercept_, 'sigmoid')]
        return [(est.coef_.T, est.intercept_, 'softmax')]
    if name in ('MLPRegressor', 'MLPClassifier'):
        if est.n_outputs_ > 1 and est.out_activation_ != 'softmax':
            raise Unsupported(f'{name} with {est.n_outputs_} outputs (multi-output or multi-label) is not supported')
        acts = [ACTIVATIONS[est.activation]] * (len(est.coefs_) - 1) + [ACTIVATIONS[est.out_activation_]]
        return list(zip(est.coefs_, est.intercepts_, acts))
    coef = np.asarray(est.coef_, dtype=np.float64)
    if coef.ndim > 1 and coef.shape[0] != 1:
        raise Unsupported(f'{name} with {coef.shape[0]} targets is not supported')
    return [(coef.reshape(-1, 1), np.asarray(est.intercept_, dtype=np.float64).reshape(1), 'identity')]


def forward(layers, x):
    for w, b, act in layers:
        x = x @ w + b
        if act == 'relu':
            x = np.maximum(x, 0)
        elif act == 'tanh':
            x = np.tanh(x)
        elif act == 'sigmoid':
            x = 1 / (1 + np.exp(-x))
        elif act == 'softmax':
            e = np.exp(x - x.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
    return x


def library_output(model, x):
    if hasattr(model, 'predict_proba'):
        p = model.predict_proba(x)
        return p[:, 1:] if p.shape[1] == 2 else p
    return model.predict(x).reshape(-1, 1)


def export_dense(est, scalers, model, n):
    layers = dense_layers(est)
    if scalers:
        a, c = affine(scalers, n)
        w, b, act = layers[0]
        folded = [(a[:, None] * w, b + c @ w, act)] + layers[1:]
        x = probe_rows(scalers, n)
        want = library_output(model, x)
        layers = folded if np.allclose(forward(folded, x), want, rtol=1e-9, atol=1e-12 * np.abs(want).max()) \
            else step_layers(scalers, n) + layers
    name = kind_of(est)
    if len(layers) == 1 and name in ('LinearRegression', 'Ridge', 'Lasso', 'ElasticNet'):
        w, b, _ = layers[0]
        return {'kind': 'linear', 'coef': w[:, 0].tolist(), 'intercept': float(b[0])}
    if len(layers) == 1 and name == 'LogisticRegression':
        w, b, _ = layers[0]
        return {'kind': 'logistic', 'coef': w.T.tolist(), 'intercept': b.tolist()}
    return {'kind': 'mlp', 'layers': [{'weights': w.tolist(), 'bias': np.atleast_1d(b).tolist(), 'activation': act}
                                      for w, b, act in layers]}


def sk_tree(tree, output, leaf, fold):
    """One fitted sklearn Tree: `leaf(values)` turns tree_.value into the per-node values to serve."""
    t = tree.tree_
    leaves = t.children_left == -1
    values = np.asarray(leaf(t.value), dtype=np.float64).reshape(t.node_count, -1)
    values[~leaves] = 0
    return node_arrays(output, values, np.where(leaves, -1, t.feature), t.threshold, t.children_left, t.children_right,
                       None, fold, float32=True)


def hist_tree(predictor, output, fold):
    nodes = predictor.nodes
    if nodes['is_categorical'].any():
        raise Unsupported('HistGradientBoosting with categorical splits is not supported (numerical features only)')
    leaves = nodes['is_leaf'].astype(bool)
    values = np.where(leaves, nodes['value'], 0.0).reshape(-1, 1)
    return node_arrays(output, values, np.where(leaves, -1, nodes['feature_idx']), nodes['num_threshold'],
                       np.where(leaves, -1, nodes['left']), np.where(leaves, -1, nodes['right']),
                       np.where(leaves, False, nodes['missing_go_to_left']), fold, float32=False)


def node_arrays(output, values, feature, threshold, left, right, missing_left, fold, float32):
    feature = np.asarray(feature, dtype=np.int64)
    split = feature >= 0
    threshold = np.where(split, threshold, 0.0).astype(np.float64)
    # HistGradientBoosting's "split on missing values": every number goes left; the largest double says so in JSON.
    threshold[np.isposinf(threshold)] = BIGGEST
    if not np.isfinite(threshold).all():
        raise Unsupported('a tree with a threshold that is not a finite number cannot be exported')
    foldable = split & (threshold < BIGGEST)
    if fold and foldable.any():
        threshold[foldable] = fold(feature[foldable], threshold[foldable], float32)
    tree = {'output': output, 'width': values.shape[1], 'feature': feature.tolist(), 'threshold': threshold.tolist(),
            'left': np.asarray(left, dtype=np.int64).tolist(), 'right': np.asarray(right, dtype=np.int64).tolist()}
    if missing_left is not None:
        tree['missing_left'] = np.asarray(missing_left, dtype=bool).tolist()
    tree['value'] = values.ravel().tolist()
    return tree


def class_probabilities(n_classes):
    """tree_.value -> the per-leaf probabilities, computed as DecisionTreeClassifier.predict_proba does."""
    def leaf(value):
        proba = value.reshape(value.shape[0], -1)[:, :n_classes]
        normalizer = proba.sum(axis=1)[:, np.newaxis]
        normalizer[normalizer == 0.0] = 1.0
        return proba / normalizer
    return leaf


def gb_base(est, n):
    if est.init_ != 'zero' and not kind_of(est.init_).startswith('Dummy'):
        raise Unsupported(f'{kind_of(est)} with init={kind_of(est.init_)} is not supported (default or "zero" only)')
    probes = np.array([np.zeros(n), np.ones(n)])
    raw = est._raw_predict_init(probes)
    if not np.array_equal(raw[0], raw[1]):
        raise Unsupported(f'{kind_of(est)} with an init estimator whose prediction depends on the row is not supported')
    return raw[0]


def export_trees(est, fold, n_classes):
    name = kind_of(est)
    if getattr(est, 'n_outputs_', 1) != 1:
        raise Unsupported(f'{name} with {est.n_outputs_} outputs (multi-output) is not supported')
    k = 1 if n_classes in (0, 2) else n_classes
    if name.startswith(('DecisionTree', 'RandomForest', 'ExtraTrees')):
        # Leaves hold the class probabilities, both of them for two classes: the mean is the probability itself.
        k = n_classes or 1
        trees = est.estimators_ if name in FORESTS else [est]
        leaf = class_probabilities(n_classes) if n_classes else (lambda v: v[:, 0, 0])
        body = {'outputs': k, 'comparison': 'le32', 'accumulate': 'f64', 'aggregate': 'mean' if name in FORESTS else 'sum',
                'base': [0.0] * k, 'link': 'identity', 'trees': [sk_tree(t, 0, leaf, fold) for t in trees]}
    elif name.startswith('GradientBoosting'):
        base = gb_base(est, est.n_features_in_)
        double = n_classes == 2 and est.loss == 'exponential'  # its probability is sigmoid(2 * raw)
        factor = est.learning_rate * (2.0 if double else 1.0)
        trees = [sk_tree(est.estimators_[i, j], j, lambda v: factor * v[:, 0, 0], fold)
                 for i in range(est.estimators_.shape[0]) for j in range(est.estimators_.shape[1])]
        body = {'outputs': k, 'comparison': 'le32', 'accumulate': 'f64', 'aggregate': 'sum',
                'base': (base * (2.0 if double else 1.0)).tolist(),
                'link': 'identity' if not n_classes else 'sigmoid' if n_classes == 2 else 'softmax', 'trees': trees}
    else:
        if est.loss in ('poisson', 'gamma'):
            raise Unsupported(f'{name} with loss={est.loss} is not supported (its inverse link is exp)')
        if getattr(est, 'is_categorical_', None) is not None and np.asarray(est.is_categorical_).any():
            raise Unsupported(f'{name} with categorical features is not supported (numerical features only)')
        trees = [hist_tree(p, j, fold) for stage in est._predictors for j, p in enumerate(stage)]
        body = {'outputs': k, 'comparison': 'le', 'accumulate': 'f64', 'aggregate': 'sum',
                'base': np.asarray(est._baseline_prediction, dtype=np.float64).ravel().tolist(),
                'link': 'identity' if not n_classes else 'sigmoid' if n_classes == 2 else 'softmax', 'trees': trees}
    if fold:
        body['comparison'] = 'le'  # folded thresholds compare the raw float64 value
    return {'kind': 'trees', **body}


def export(model, name, features=None, classes=None):
    steps = [s for _, s in model.steps if s not in (None, 'passthrough')] if kind_of(model) == 'Pipeline' else [model]
    est, scalers = steps[-1], steps[:-1]
    for s in scalers:
        if kind_of(s) not in SCALERS:
            raise Unsupported(f'{kind_of(s)} in a Pipeline is not supported (only StandardScaler and MinMaxScaler steps before the model)')
    where = f' after {", ".join(kind_of(s) for s in scalers)}' if scalers else ''
    if kind_of(est) not in DENSE | TREES:
        raise Unsupported(f'{kind_of(est)}{where} is not supported by scripts/export-sklearn.py')
    try:
        check_is_fitted(est)
    except NotFittedError:
        raise Unsupported(f'{kind_of(est)} is not fitted') from None
    n = est.n_features_in_
    names = list(features) if features else [str(f) for f in getattr(model, 'feature_names_in_', [f'x{i}' for i in range(n)])]
    if len(names) != n:
        raise Unsupported(f'--features names {len(names)} features; the model has {n}')
    own = [str(c) for c in est.classes_] if hasattr(est, 'classes_') else []
    labels = list(classes) if classes else own
    if len(labels) != len(own):
        raise Unsupported(f'--classes names {len(labels)} classes; the model has {len(own)}')
    if kind_of(est) in DENSE:
        body = export_dense(est, scalers, model, n)
    else:
        fold = (lambda f, t, float32: fold_thresholds(scalers, f, t, float32)) if scalers else None
        body = export_trees(est, fold, len(own))
    # Field order as in the service's own files: name, version, kind, description, features, classes, the rest.
    return {'name': name, 'version': '1', 'kind': body.pop('kind'),
            'description': f'{" + ".join(kind_of(s) for s in steps)} exported from scikit-learn {sklearn.__version__}',
            'features': names, **({'classes': labels} if labels else {}), **body}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Class labels are written, and served, as strings: a model fitted on labels 0, 1, 2 answers "0", "1", "2".')
    parser.add_argument('model', help='a .joblib or .pkl file saved with joblib.dump (or pickle)')
    parser.add_argument('--name', help="the model's name in the service (default: the file's stem)")
    parser.add_argument('--features', help='feature names, comma-separated, in the order the model was fitted')
    parser.add_argument('--classes', help="class labels, comma-separated, in the order of the estimator's classes_ (default: str() of each; labels are strings in the model file)")
    args = parser.parse_args()
    try:
        model = joblib.load(args.model)
    except Exception as error:
        print(f'export-sklearn: cannot load {args.model}: {str(error).splitlines()[0] if str(error) else kind_of(error)}', file=sys.stderr)
        return 1
    name = args.name or pathlib.Path(args.model).stem
    try:
        out = export(model, name, args.features and args.features.split(','), args.classes and args.classes.split(','))
    except Unsupported as error:
        print(f'export-sklearn: {error}', file=sys.stderr)
        return 2
    except Exception as error:  # a model this script did not foresee: say so in one line, not a traceback
        print(f'export-sklearn: cannot export {kind_of(model)}: {kind_of(error)}: {str(error).splitlines()[0] if str(error) else ""}', file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, allow_nan=False)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
