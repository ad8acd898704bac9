"""The scorer's ``labels=`` padding: a class the training fold lacked is a zero column in the response's own dtype.

Every expected value is scikit-learn's ``log_loss`` of the response padded here (``np.insert`` of zero columns,
which keeps the response's dtype, so ``log_loss`` clips with that dtype's eps), never this package's output.
Gradient-boosting libraries return float32 probabilities; a cross-validation fold that lacks a class is where
the padding happens (issue 20, part 4).
"""

import warnings

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate

from xent_metrics.scoring import make_cross_entropy_scorer, neg_cross_entropy_scorer

LABELS = np.array(["ant", "bee", "cat", "dog"])
#: log_loss computes float32 and float16 in that dtype (we sum in float64): their rounding, with a margin.
RTOL = {np.float64: 1e-12, np.float32: 2e-6, np.float16: 3e-3}
#: Classes a training fold lacks, by position in LABELS: the first, a middle one, the last, two at once.
MISSING = {"first": [0], "middle": [2], "last": [3], "first-and-middle": [0, 1]}
NOT_ONE = "do not sum to one"


class CentroidSoftmax(ClassifierMixin, BaseEstimator):
    """A tiny classifier whose ``predict_proba`` is computed and returned in ``dtype``, as boosting libraries do.

    A softmax of ``-sharpness`` times the squared distance to each class centroid: confident rows underflow to
    exact 0 and 1 in ``dtype``. ``unnormalised`` scales row ``i`` by a factor in ``[0.6, 1]`` (rows sum to < 1).
    ``predict_log_proba`` is ``log(predict_proba)`` in ``dtype``, as many scikit-learn estimators define it.
    """

    def __init__(self, dtype="float32", sharpness=3.0, unnormalised=False):
        self.dtype = dtype
        self.sharpness = sharpness
        self.unnormalised = unnormalised

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([np.asarray(X)[np.asarray(y) == c].mean(0) for c in self.classes_])
        return self

    def predict_proba(self, X):
        distance = ((np.asarray(X)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        z = (-self.sharpness * distance).astype(self.dtype)
        p = np.exp(z - z.max(1, keepdims=True))
        p = p / p.sum(1, keepdims=True)
        if self.unnormalised:
            p = p * np.linspace(0.6, 1.0, p.shape[0]).astype(self.dtype)[:, None]
        assert p.dtype == np.dtype(self.dtype)
        return p

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class Canned:
    """A fitted classifier stand-in: ``classes_`` and a fixed ``predict_proba``."""

    def __init__(self, classes, proba):
        self.classes_ = np.asarray(classes)
        self.proba = proba

    def predict_proba(self, X):
        return self.proba


def _padded(proba, missing):
    """``proba`` with a zero column inserted at each position in ``missing`` (ascending), in ``proba``'s dtype."""
    for k in sorted(missing):
        proba = np.insert(proba, k, 0, axis=1)
    return proba


def _log_loss(*args, warns, **kwargs):
    """scikit-learn's ``log_loss``, asserting whether it warns that the rows do not sum to one."""
    if warns:
        with pytest.warns(UserWarning, match=NOT_ONE):
            return log_loss(*args, **kwargs)
    return log_loss(*args, **kwargs)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=160, centers=4, n_features=3, cluster_std=3.0, center_box=(-4, 4), random_state=1)
    return X, LABELS[y]


def _split(y, missing):
    """Train on the even rows of the classes not missing; test on every odd row (all four classes)."""
    rows = np.arange(len(y))
    train = rows[(rows % 2 == 0) & ~np.isin(y, LABELS[missing])]
    return train, rows[1::2]


def test_float32_padding_keeps_float32_eps_issue_20():
    """Issue 20's case. Before: -12.4766 (the response widened to float64, clipped at 2.2e-16); now -5.7762."""
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], dtype=np.float32)  # the last row is confidently wrong
    y = np.array([0, 1, 1])
    padded = np.column_stack([proba, np.zeros(3, dtype=np.float32)])
    expected = -log_loss(y, padded, labels=[0, 1, 2])
    widened = -log_loss(y, padded.astype(np.float64), labels=[0, 1, 2])
    assert_allclose([expected, widened], [-5.7762, -12.4766], atol=1e-4)  # the issue's numbers, by scikit-learn
    got = make_cross_entropy_scorer(labels=[0, 1, 2])(Canned([0, 1], proba), None, y)
    assert_allclose(got, expected, rtol=RTOL[np.float32])
    got = make_cross_entropy_scorer(labels=[0, 1, 2])(Canned([0, 1], proba.astype(np.float16)), None, y)
    assert_allclose(got, -log_loss(y, padded.astype(np.float16), labels=[0, 1, 2]), rtol=RTOL[np.float16])


def test_integer_response_is_padded_as_float64():
    """An integer ``predict_proba`` (hard 0/1 votes) is read as float64, as ``log_loss`` reads it."""
    proba = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    y = np.array([0, 1, 2, 0])
    expected = -log_loss(y, _padded(proba, [2]), labels=[0, 1, 2])
    assert_allclose(make_cross_entropy_scorer(labels=[0, 1, 2])(Canned([0, 1], proba), None, y), expected, rtol=1e-12)


def test_float32_response_rows_are_checked_at_float32_tolerance():
    """The scorer read a float32 response as float64 to check it: every float32 ``predict_proba`` warned."""
    rng = np.random.default_rng(5)
    proba = rng.dirichlet(np.ones(3), size=200).astype(np.float32)
    assert np.abs(proba.astype(np.float64).sum(1) - 1).max() > 1e-8 + np.sqrt(np.finfo(np.float64).eps)
    y = rng.integers(0, 3, size=200)
    expected = -log_loss(y, proba)  # no warning: float32 rows are within float32's tolerance
    assert_allclose(neg_cross_entropy_scorer(Canned([0, 1, 2], proba), None, y), expected, rtol=RTOL[np.float32])
    proba[0] *= np.float32(0.999)  # off by 1e-3, outside float32's sqrt(eps) = 3.5e-4: both warn
    expected = -_log_loss(y, proba, warns=True)
    with pytest.warns(UserWarning, match=r"`Canned\.predict_proba\(X\)` rows sum to values in \[0\.999"):
        assert_allclose(neg_cross_entropy_scorer(Canned([0, 1, 2], proba), None, y), expected, rtol=RTOL[np.float32])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "zero-weights"])
@pytest.mark.parametrize("unnormalised", [False, True], ids=["rows-sum-to-1", "unnormalised"])
@pytest.mark.parametrize("position", sorted(MISSING))
def test_scorer_pads_any_missing_class_like_log_loss(blobs, position, dtype, weighted, unnormalised):
    X, y = blobs
    missing = MISSING[position]
    train, test = _split(y, missing)
    est = CentroidSoftmax(dtype=np.dtype(dtype).name, unnormalised=unnormalised).fit(X[train], y[train])
    assert est.classes_.tolist() == np.delete(LABELS, missing).tolist()
    proba, yt = est.predict_proba(X[test]), y[test]
    padded = _padded(proba, missing)
    true_p = padded[np.arange(len(yt)), np.searchsorted(LABELS, yt)]
    unseen, wrong = np.isin(yt, LABELS[missing]), true_p < np.finfo(dtype).eps  # wrong: clipped, confidently wrong
    assert padded.dtype == dtype and (wrong & ~unseen).any()
    weight = np.random.default_rng(len(missing)).uniform(0.1, 2.0, len(test)) if weighted else np.ones(len(test))
    if weighted:
        weight[::4] = 0.0  # among them rows of the missing classes and confidently wrong rows
        assert {0.0} < set(weight[unseen]) and (weight[wrong & ~unseen] == 0).any()
    sample_weight = weight if weighted else None
    expected = -_log_loss(yt, padded, labels=LABELS, sample_weight=sample_weight, warns=unnormalised)
    scorer = make_cross_entropy_scorer(labels=LABELS.tolist())
    if unnormalised:
        with pytest.warns(UserWarning, match=r"`CentroidSoftmax\.predict_proba\(X\)` rows sum to values in \[0\.6"):
            got = scorer(est, X[test], yt, sample_weight=sample_weight)
    else:
        got = scorer(est, X[test], yt, sample_weight=sample_weight)
    assert_allclose(got, expected, rtol=RTOL[dtype])
    if dtype != np.float64:  # the old rule, the response widened to float64 first, is far from it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # widened rows are checked at float64's tolerance: they may warn
            widened = -log_loss(yt, padded.astype(np.float64), labels=LABELS, sample_weight=sample_weight)
        assert abs(widened - expected) > 1000 * RTOL[dtype] * abs(expected)
    _check_log_probs_path(est, X[test], yt, padded, weight, missing)


def _check_log_probs_path(est, X, yt, padded, weight, missing):
    """``predict_log_proba = log(predict_proba)`` scores as the probabilities do, a padded class included.

    Log-probabilities are used as given (no clipping): rows whose seen true class has a probability the
    probabilities path clips (0, below eps, or above 1 - eps) are weighted 0 here, an infinite loss among them.
    """
    eps = np.finfo(padded.dtype).eps
    true_p = padded[np.arange(len(yt)), np.searchsorted(LABELS, yt)]
    unseen = np.isin(yt, LABELS[missing])
    clipped = ~unseen & ((true_p < eps) | (true_p > 1 - eps))
    assert clipped.any() and (weight[unseen] > 0).any()
    if ((true_p == 0) & ~unseen & (weight > 0)).any():  # log 0 = -inf on a true class, as given: the loss is inf
        assert make_log_probs_scorer()(est, X, yt, sample_weight=weight) == -np.inf
    weight = np.where(clipped, 0.0, weight)
    warns = bool(est.unnormalised)
    expected = -_log_loss(yt, padded, labels=LABELS, sample_weight=weight, warns=warns)
    probs = make_cross_entropy_scorer(labels=LABELS.tolist())
    if warns:
        with pytest.warns(UserWarning, match=NOT_ONE):
            probs_value = probs(est, X, yt, sample_weight=weight)
    else:
        probs_value = probs(est, X, yt, sample_weight=weight)
    got = make_log_probs_scorer()(est, X, yt, sample_weight=weight)
    assert np.isfinite(got)
    assert_allclose(got, probs_value, rtol=RTOL[padded.dtype.type])
    assert_allclose(got, expected, rtol=RTOL[padded.dtype.type])


def make_log_probs_scorer(labels=None):
    labels = LABELS.tolist() if labels is None else labels
    return make_cross_entropy_scorer(labels=labels, input_format="log_probs", response_method="predict_log_proba")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("seen", [1, 0], ids=["lacks-first", "lacks-last"])
def test_binary_single_class_fold(dtype, seen):
    """A training fold with one class of two: its ``(n, 1)`` response padded, the positive column scored."""
    rng = np.random.default_rng(seen)
    X = rng.normal(size=(30, 2))
    y = rng.integers(0, 2, size=30)
    y[:3] = 1 - seen  # the unseen class is a true label of some rows
    est = CentroidSoftmax(dtype=np.dtype(dtype).name).fit(X, np.full(30, seen))
    proba = est.predict_proba(X)
    assert proba.shape == (30, 1) and proba.dtype == dtype
    padded = _padded(proba, [1 - seen])
    expected = -log_loss(y, padded[:, 1], labels=[0, 1])  # the positive column, as scikit-learn's neg_log_loss
    assert_allclose(make_cross_entropy_scorer(labels=[0, 1])(est, X, y), expected, rtol=RTOL[dtype])
    assert_allclose(make_log_probs_scorer([0, 1])(est, X, y), expected, rtol=RTOL[dtype])
    if dtype != np.float64:
        assert not np.isclose(expected, -log_loss(y, padded[:, 1].astype(np.float64), labels=[0, 1]), rtol=0.1)


def _fold_splits(y):
    """One split per position of MISSING: the training fold lacks those classes, the test fold has all."""
    return [_split(y, missing) for missing in MISSING.values()]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_cross_validate_with_routed_weights(blobs, dtype):
    X, y = blobs
    weight = np.random.default_rng(7).uniform(0.1, 2.0, len(y))
    weight[::6] = 0.0
    splits = _fold_splits(y)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_cross_entropy_scorer(labels=LABELS.tolist()).set_score_request(sample_weight=True)
        out = cross_validate(
            CentroidSoftmax(dtype=dtype),
            X,
            y,
            cv=splits,
            scoring=scorer,
            params={"sample_weight": weight},
            return_estimator=True,
            error_score="raise",
        )
    for (_, test), est, missing, score in zip(
        splits, out["estimator"], MISSING.values(), out["test_score"], strict=True
    ):
        padded = _padded(est.predict_proba(X[test]), missing)
        expected = -log_loss(y[test], padded, labels=LABELS, sample_weight=weight[test])
        assert_allclose(score, expected, rtol=RTOL[np.dtype(dtype).type])


def test_grid_search_scores_and_picks_as_log_loss(blobs):
    X, y = blobs
    splits = _fold_splits(y)
    grid = {"sharpness": [0.05, 0.3, 3.0]}
    scorer = make_cross_entropy_scorer(labels=LABELS.tolist())
    search = GridSearchCV(CentroidSoftmax(dtype="float32"), grid, cv=splits, scoring=scorer, error_score="raise")
    search.fit(X, y)
    expected = np.empty((len(grid["sharpness"]), len(splits)))
    for i, sharpness in enumerate(grid["sharpness"]):
        for j, ((train, test), missing) in enumerate(zip(splits, MISSING.values(), strict=True)):
            est = clone(search.estimator).set_params(sharpness=sharpness).fit(X[train], y[train])
            expected[i, j] = -log_loss(y[test], _padded(est.predict_proba(X[test]), missing), labels=LABELS)
    got = np.column_stack([search.cv_results_[f"split{j}_test_score"] for j in range(len(splits))])
    assert_allclose(got, expected, rtol=RTOL[np.float32])
    assert search.best_index_ == int(np.argmax(expected.mean(1)))


def test_logistic_regression_in_cross_val_score(blobs):
    """scikit-learn's own float64 estimator, on folds lacking the first, a middle, the last and two classes."""
    X, y = blobs
    splits = _fold_splits(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = cross_val_score(
            LogisticRegression(max_iter=2000), X, y, cv=splits, scoring=make_cross_entropy_scorer(labels=LABELS)
        )
    for (train, test), missing, score in zip(splits, MISSING.values(), scores, strict=True):
        est = LogisticRegression(max_iter=2000).fit(X[train], y[train])
        expected = -log_loss(y[test], _padded(est.predict_proba(X[test]), missing), labels=LABELS)
        assert_allclose(score, expected, rtol=1e-12)


class _HalfLogProbs(Canned):
    def predict_log_proba(self, X):
        return np.log(self.proba)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_padded_class_costs_exactly_log_eps_of_the_response_dtype_in_both_formats(dtype):
    # Sweep finding F4: log(eps) written into a float16 array rounds (-6.9297 for -6.9315): the padded class cost
    # 3e-4 less through log-probabilities than through probabilities. Exact: mean(-log(eps), -log(0.3)).
    proba = np.array([[0.3, 0.7], [0.3, 0.7]], dtype=dtype)
    est = _HalfLogProbs([1, 2], proba)
    y = np.array([0, 1])
    exact = (-np.log(np.float64(np.finfo(dtype).eps)) - np.log(np.float64(dtype(0.3)))) / 2
    probs = make_cross_entropy_scorer(labels=[0, 1, 2])(est, None, y)
    log_probs = make_log_probs_scorer(labels=[0, 1, 2])(est, None, y)
    assert_allclose(-probs, exact, rtol=1e-12)
    # the seen class's log-probability is np.log of the float16/32 value, rounded in that dtype
    seen = -np.float64(np.log(dtype(0.3)))
    assert_allclose(-log_probs, (-np.log(np.float64(np.finfo(dtype).eps)) + seen) / 2, rtol=1e-12)
    assert_allclose(log_probs, probs, rtol=2e-6 if dtype != np.float16 else 1e-3)
