"""d2_cross_entropy_score against sklearn.metrics.d2_log_loss_score, per-column sklearn, and scipy for logits."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.special import expit, log_expit, logsumexp
from sklearn.metrics import d2_log_loss_score, log_loss

from xent_metrics.scoring import d2_cross_entropy_score

TOL = {"rtol": 1e-12, "atol": 1e-12}
NOT_ONE = "The y_prob values do not sum to one"
DEGENERATE = "Normalized entropy is undefined"


def _record(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


def _weighted_classes(y, weight):
    """The classes of ``y`` that carry positive weight (the prior is degenerate with fewer than two)."""
    y = np.asarray(y)
    return set(y.tolist()) if weight is None else set(y[np.asarray(weight) > 0].tolist())


@st.composite
def problems(draw):
    """A random binary / multiclass problem with every option d2_log_loss_score takes (weights >= 0)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, num_classes = draw(st.integers(2, 30)), draw(st.integers(2, 5))
    proba = rng.dirichlet(np.ones(num_classes) * draw(st.sampled_from([0.1, 1.0, 10.0])), size=n)
    if draw(st.booleans()):  # exact 0 and 1: the clipping path
        proba[rng.random(n) < 0.3] = np.eye(num_classes)[rng.integers(0, num_classes)]
    if draw(st.booleans()):  # rows that do not sum to 1: both warn, neither renormalises
        proba = proba * rng.uniform(0.5, 1.0, size=(n, 1))
    y = rng.integers(0, num_classes, size=n)
    kwargs = {}
    if draw(st.booleans()) or len(np.unique(y)) < num_classes:
        kwargs["labels"] = list(range(num_classes))
    weight = draw(st.sampled_from([None, "float", "int"]))
    if weight == "float":
        kwargs["sample_weight"] = rng.uniform(0, 3, size=n) * 0.3
    elif weight == "int":
        kwargs["sample_weight"] = rng.integers(0, 4, size=n)
    if draw(st.booleans()):
        table = np.array([f"c{i}" for i in range(num_classes)])
        y = table[y]
        if "labels" in kwargs:
            kwargs["labels"] = table.tolist()
    if num_classes == 2 and draw(st.booleans()):
        proba = proba[:, 1]  # positive-class probabilities
    if draw(st.booleans()):
        y, proba = pd.Series(y), (pd.Series(proba) if proba.ndim == 1 else pd.DataFrame(proba))
    return y, proba, kwargs


@given(problems())
def test_equals_d2_log_loss_score_on_random_problems(problem):
    y, proba, kwargs = problem
    if np.all(np.asarray(kwargs.get("sample_weight", 1)) == 0):
        return  # both reject all-zero weights; covered below
    ours, ours_w = _record(d2_cross_entropy_score, y, proba, **kwargs)
    if len(_weighted_classes(y, kwargs.get("sample_weight"))) < 2:
        # A one-class prior has zero entropy: nan here; scikit-learn divides by its eps-clipped loss.
        assert np.isnan(ours) and any(DEGENERATE in m for m in ours_w)
        return
    ref, ref_w = _record(d2_log_loss_score, y, proba, **kwargs)
    assert_allclose(ours, ref, **TOL)
    assert any(NOT_ONE in m for m in ours_w) == any(NOT_ONE in m for m in ref_w)


@pytest.mark.parametrize(
    ("y_true", "y_proba", "kwargs"),
    [
        (["spam", "ham", "ham", "spam"], [[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]], {}),
        ([0, 1, 1], [[0.2], [0.7], [0.9]], {}),  # (n, 1): positive-class column
        ([0, 1, 1, 0], np.array([1, 0, 1, 0]), {}),  # integer 0 / 1 probabilities, clipped
        ([0, 1, 1], [[0.2, 0.1, 0.7], [0.7, 0.1, 0.2], [0.3, 0.4, 0.3]], {"labels": [0, 1, 2]}),  # class 2 absent
        ([0, 1, 1], [0.3, 0.7, 0.9], {"sample_weight": [0.3, 0, 0.7]}),
        ([2, 0, 1, 1], np.eye(3)[[2, 0, 1, 0]] * 0.97 + 0.01, {"sample_weight": [0.1, 0.2, 0.3, 1e-9]}),
        (pd.Series(["b", "a", "c", "a"], dtype="category"), np.full((4, 3), 0.3), {}),  # rows sum to 0.9: warns
    ],
)
def test_equals_d2_log_loss_score_on_named_inputs(y_true, y_proba, kwargs):
    ref, ref_w = _record(d2_log_loss_score, y_true, y_proba, **kwargs)
    ours, ours_w = _record(d2_cross_entropy_score, y_true, y_proba, **kwargs)
    assert_allclose(ours, ref, **TOL)
    assert any(NOT_ONE in m for m in ours_w) == any(NOT_ONE in m for m in ref_w)


def test_float32_is_close_to_d2_log_loss_score(rng):
    proba = rng.dirichlet(np.ones(4), size=300).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 rows may miss 1 by more than sqrt(eps): both warn
        assert_allclose(d2_cross_entropy_score(y, proba), d2_log_loss_score(y, proba), rtol=1e-5)


def _prior_loss(onehot, weight):
    """-sum_i w_i log(prior_{y_i}), the prior being the weighted class frequencies: the D² denominator."""
    prior = np.average(onehot, axis=0, weights=weight)
    return -np.sum((np.ones(len(onehot)) if weight is None else weight) * np.log((onehot * prior).sum(axis=1)))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("num_classes", [2, 3, 7])
def test_logits_against_scipy(rng, num_classes, weighted):
    n = 60
    logits = rng.normal(0, 3.3, size=(n, num_classes))
    logits[:5] *= 100  # confident rows: margins of hundreds of nats, right and wrong
    y = rng.integers(0, num_classes, size=n)
    weight = rng.uniform(0, 2, size=n) * 0.7 if weighted else None
    w = np.ones(n) if weight is None else weight
    onehot = np.eye(num_classes)[y]
    loss = np.sum(w * (logsumexp(logits, axis=1) - logits[np.arange(n), y]))
    expected = 1 - loss / _prior_loss(onehot, weight)
    got = d2_cross_entropy_score(y, logits, input_format="logits", sample_weight=weight)
    assert_allclose(got, expected, **TOL)
    if num_classes == 2:  # 1-D margins of the positive class: -log_expit(+-z)
        margin = logits[:, 1] - logits[:, 0]
        loss = -np.sum(w * np.where(y == 1, log_expit(margin), log_expit(-margin)))
        got = d2_cross_entropy_score(y, margin, input_format="logits", sample_weight=weight)
        assert_allclose(got, 1 - loss / _prior_loss(onehot, weight), **TOL)


@pytest.fixture
def multilabel(rng):
    n, k = 80, 5
    target = (rng.random((n, k)) < [0.1, 0.3, 0.5, 0.7, 0.93]).astype(int)
    proba = np.clip(np.abs(target - rng.beta(1.3, 3.0, size=(n, k))), 0, 1)
    proba[:4, 0] = 1.0 - target[:4, 0]  # confidently wrong, clipped at eps
    return target, proba, rng.uniform(0, 2, size=n) * 0.3


def _per_column(target, proba, weight):
    """Per label: sklearn's D², its loss sum and the loss sum of the constant base rate (log_loss per column)."""
    d2, loss, null = [], [], []
    for k in range(target.shape[1]):
        y, p = target[:, k], proba[:, k]
        d2.append(d2_log_loss_score(y, p, sample_weight=weight, labels=[0, 1]))
        loss.append(log_loss(y, p, sample_weight=weight, labels=[0, 1], normalize=False))
        rate = np.full(len(y), np.average(y, weights=weight))
        null.append(log_loss(y, rate, sample_weight=weight, labels=[0, 1], normalize=False))
    return np.array(d2), np.sum(loss), np.sum(null)


@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_is_per_column_d2_log_loss_score(multilabel, weighted):
    target, proba, weight = multilabel
    weight = weight if weighted else None
    d2, loss, null = _per_column(target, proba, weight)
    assert_allclose(d2_cross_entropy_score(target, proba, sample_weight=weight, average="none"), d2, **TOL)
    assert_allclose(d2_cross_entropy_score(target, proba, sample_weight=weight, average="macro"), d2.mean(), **TOL)
    assert_allclose(d2_cross_entropy_score(target, proba, sample_weight=weight), 1 - loss / null, **TOL)
    as_list = [np.column_stack([1 - proba[:, k], proba[:, k]]) for k in range(target.shape[1])]
    listed = d2_cross_entropy_score(target, as_list, sample_weight=weight, average="none")
    assert_allclose(listed, d2, **TOL)


def test_multilabel_logits_against_scipy(rng):
    target = (rng.random((50, 3)) < 0.4).astype(int)
    logits = rng.normal(0, 2.3, size=(50, 3))
    logits[0] = [600.0, -600.0, 30.0]
    weight = rng.uniform(0, 1, size=50)
    loss = -(target * log_expit(logits) + (1 - target) * log_expit(-logits))
    rate = np.average(target, axis=0, weights=weight)
    null = -(target * np.log(rate) + (1 - target) * np.log1p(-rate))
    per_label = 1 - (weight @ loss) / (weight @ null)
    got = d2_cross_entropy_score(target, logits, input_format="logits", sample_weight=weight, average="none")
    assert_allclose(got, per_label, **TOL)
    micro = d2_cross_entropy_score(target, logits, input_format="logits", sample_weight=weight)
    assert_allclose(micro, 1 - (weight @ loss).sum() / (weight @ null).sum(), **TOL)
    rest = {"sample_weight": weight[1:], "average": "none"}  # without the confident row, probs read the same
    from_probs = d2_cross_entropy_score(target[1:], expit(logits[1:]), **rest)
    assert_allclose(from_probs, d2_cross_entropy_score(target[1:], logits[1:], input_format="logits", **rest), 1e-9)


def test_log_probs_equal_probs(rng):
    proba = rng.dirichlet(np.ones(3) * 0.7, size=40)
    y = rng.integers(0, 3, size=40)
    assert_allclose(d2_cross_entropy_score(y, np.log(proba), input_format="log_probs"), d2_log_loss_score(y, proba))


def test_perfect_prior_and_worse_than_prior():
    y = np.array([0, 1, 1, 0, 1])
    prior = np.full(5, 0.6)  # predicting the class prior explains nothing
    assert_allclose(d2_cross_entropy_score(y, prior), 0.0, atol=1e-15)
    assert d2_cross_entropy_score(y, np.where(y == 1, 1.0, 0.0)) == pytest.approx(1.0, abs=1e-12)
    assert d2_cross_entropy_score(y, np.where(y == 1, 0.3, 0.7)) < 0


def test_zero_entropy_prior_gives_nan_and_warns():
    with pytest.warns(UserWarning, match=rf"{DEGENERATE} for 1 class prior"):
        assert np.isnan(d2_cross_entropy_score([1, 1, 1], [[0.3, 0.7]] * 3, labels=[0, 1]))
    target = np.array([[1, 0], [1, 1], [1, 0]])  # label 0 always on
    with pytest.warns(UserWarning, match=rf"{DEGENERATE} for 1 label"):
        per_label = d2_cross_entropy_score(target, np.full((3, 2), 0.3), average="none")
    assert np.isnan(per_label[0]) and np.isfinite(per_label[1])
    with pytest.warns(UserWarning, match="average='macro' skips it"):
        assert d2_cross_entropy_score(target, np.full((3, 2), 0.3), average="macro") == per_label[1]


@pytest.mark.parametrize(
    ("y_true", "y_proba", "kwargs", "error", "match"),
    [
        ([0, 1, 1], [0.3, 0.7, 0.9], {"sample_weight": [1.0, -0.3, 2.0]}, ValueError, r"must be >= 0.*-0\.3"),
        ([0, 1, 2], np.full((3, 3), 0.3), {"average": "macro"}, ValueError, r"`average` must be 'micro'.*'macro'"),
        ([0, 1, 1], [0.3, 0.7, 0.9], {"average": "weighted"}, ValueError, r"`average` must be one of"),
        ([0, 1, 1], [0.3, 0.7, 0.9], {"input_format": "probabilities"}, ValueError, r"`input_format` must be one"),
        ([0, 1, 1], [0.3, 1.7, 0.9], {}, ValueError, r"greater than 1: 1\.7"),
        ([0, 1, 1], [0.3, 0.7, 0.9], {"sample_weight": 3}, TypeError, r"`sample_weight` must be an array-like"),
        ([0, 1, 1], [0.3, 0.7, 0.9], {"sample_weight": [0, 0, 0]}, ValueError, "at least one non-zero"),
        ([0, 0, 0], [0.3, 0.7, 0.9], {}, ValueError, r"only one label \(0\)"),
        ([[0, 1], [1, 0]], [[0.3, 0.7], [0.3, 0.8]], {"sample_weight": [-1, 2]}, ValueError, r"must be >= 0"),
        ([0.5, 1.5, 1.0], [0.3, 0.7, 0.9], {}, ValueError, r"`y_true` must hold class labels.*continuous"),
    ],
)
def test_bad_input_raises_naming_the_argument(y_true, y_proba, kwargs, error, match):
    with pytest.raises(error, match=match):
        d2_cross_entropy_score(y_true, y_proba, **kwargs)
