"""cross_entropy_loss against sklearn.metrics.log_loss (binary, multiclass) and per-column log_loss (multilabel)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.special import log_expit, logsumexp
from sklearn.metrics import log_loss

from xent_metrics.scoring import cross_entropy_loss

RTOL = 1e-12
NOT_ONE = "The y_prob values do not sum to one"


def _run(fn, *args, **kwargs):
    """Call ``fn`` recording warnings: return (value or exception, sorted warning categories+texts)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(*args, **kwargs)
        except Exception as err:  # compared by the caller
            out = err
    return out, caught


def _same_as_log_loss(y_true, y_proba, rtol=RTOL, **kwargs):
    """Assert equal values (or the same exception family) and the same "do not sum to one" warning."""
    ours, ours_w = _run(cross_entropy_loss, y_true, y_proba, **kwargs)
    ref, ref_w = _run(log_loss, y_true, y_proba, **kwargs)
    if isinstance(ref, Exception):
        assert isinstance(ours, Exception), f"log_loss raised {ref!r} but we returned {ours!r}"
        assert isinstance(ref, type(ours)), f"log_loss raised {type(ref).__name__}, we {type(ours).__name__}"
        return ours
    assert not isinstance(ours, Exception), f"we raised {ours!r}, log_loss returned {ref!r}"
    assert_allclose(ours, ref, rtol=rtol, atol=0)
    assert any(NOT_ONE in str(w.message) for w in ours_w) == any(NOT_ONE in str(w.message) for w in ref_w)
    return ours


@st.composite
def problems(draw):
    """A random binary / multiclass problem with every option log_loss takes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, num_classes = draw(st.integers(1, 30)), draw(st.integers(2, 5))
    proba = rng.dirichlet(np.ones(num_classes) * draw(st.sampled_from([0.1, 1.0, 10.0])), size=n)
    if draw(st.booleans()):  # exact 0 and 1: the clipping path
        proba[rng.random(n) < 0.3] = np.eye(num_classes)[rng.integers(0, num_classes)]
    if draw(st.booleans()):  # rows that do not sum to 1: the warning path
        proba = proba * rng.uniform(0.5, 1.0, size=(n, 1))
    y = rng.integers(0, num_classes, size=n)
    kwargs = {"normalize": draw(st.booleans())}
    if draw(st.booleans()) or len(np.unique(y)) < num_classes:
        kwargs["labels"] = list(range(num_classes))
    weight = draw(st.sampled_from([None, "float", "int", "signed"]))
    if weight == "float":
        kwargs["sample_weight"] = rng.uniform(0, 3, size=n)
    elif weight == "int":
        kwargs["sample_weight"] = rng.integers(0, 4, size=n)
    elif weight == "signed":
        kwargs["sample_weight"] = rng.uniform(-0.5, 3, size=n)
    names = draw(st.sampled_from(["int", "str", "float"]))
    if names != "int":
        table = np.array([f"c{i}" for i in range(num_classes)]) if names == "str" else np.arange(num_classes) * 1.5
        y = table[y]
        if "labels" in kwargs:
            kwargs["labels"] = table.tolist()
    if num_classes == 2 and draw(st.booleans()):
        proba = proba[:, 1]  # positive-class probabilities
    container = draw(st.sampled_from(["numpy", "list", "pandas"]))
    if container == "list":
        y, proba = y.tolist(), proba.tolist()
    elif container == "pandas":
        y, proba = pd.Series(y), (pd.Series(proba) if proba.ndim == 1 else pd.DataFrame(proba))
    return y, proba, kwargs


@given(problems())
def test_equals_log_loss_on_random_problems(problem):
    y, proba, kwargs = problem
    _same_as_log_loss(y, proba, **kwargs)


@pytest.mark.parametrize(
    ("y_true", "y_proba", "kwargs"),
    [
        (["spam", "ham", "ham", "spam"], [[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]], {}),
        ([0, 1, 1], [[0.2], [0.7], [0.9]], {}),  # (n, 1): positive-class column
        ([0, 1, 1], np.array([1, 0, 1]), {}),  # integer probabilities (0 and 1, clipped)
        ([True, False], [0.2, 0.7], {}),
        ([0, 1, 1], [[0.2, 0.1, 0.7], [0.7, 0.1, 0.2], [0.9, 0.05, 0.05]], {"labels": [0, 1, 2]}),
        ([0, 1, 1], [[0.2, 0.1, 0.7], [0.7, 0.1, 0.2], [0.9, 0.05, 0.05]], {"labels": [2, 1, 0]}),  # warns: unsorted
        ([2, 0, 1], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], {"normalize": False}),
        ([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [1, -1, 2]}),  # log_loss accepts signed weights
        ([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [0, 0, 3], "normalize": False}),
        (pd.Series(["b", "a", "c"], dtype="category"), pd.DataFrame(np.eye(3)[[1, 0, 2]] * 0.9 + 0.1 / 3), {}),
    ],
)
def test_equals_log_loss_on_named_inputs(y_true, y_proba, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = log_loss(y_true, y_proba, **kwargs)
    with warnings.catch_warnings(record=True) as ours_w, warnings.catch_warnings():
        warnings.simplefilter("always")
        assert_allclose(cross_entropy_loss(y_true, y_proba, **kwargs), expected, rtol=RTOL)
    if kwargs.get("labels") == [2, 1, 0]:
        assert any("labels=[0, 1, 2]" in str(w.message) for w in ours_w)


def test_float32_is_computed_in_float32_like_log_loss(rng):
    proba = rng.dirichlet(np.ones(4), size=500).astype(np.float32)
    proba[:10] = np.eye(4, dtype=np.float32)[0]  # clipped at float32's eps, not float64's
    y = rng.integers(0, 4, size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 rows may miss 1 by more than sqrt(eps): both warn
        assert_allclose(cross_entropy_loss(y, proba), log_loss(y, proba), rtol=1e-6)


BAD_INPUTS = [
    pytest.param([0, 1, 1], [0.2, np.nan, 0.9], {}, "contains NaN", id="nan"),
    pytest.param([0, 1, 1], [0.2, np.inf, 0.9], {}, "infinity", id="inf"),
    pytest.param([0, 1, 1], [0.2, 0.7, 1.2], {}, "greater than 1: 1.2", id="above-one"),
    pytest.param([0, 1, 1], [0.2, -0.7, 0.2], {}, "lower than 0: -0.7", id="below-zero"),
    pytest.param([0, 1, 1], [0.2, 0.7], {}, "inconsistent numbers of samples.*3.*2", id="lengths"),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [1, 2]}, r"shape \(3,\).*\(2,\)", id="weight-len"),
    pytest.param(
        [0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [1, np.nan, 2]}, "sample_weight contains NaN", id="w-nan"
    ),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [0, 0, 0]}, "at least one non-zero", id="w-zero"),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": 5}, "array-like of shape", id="w-scalar"),
    pytest.param([0, 0, 0], [0.2, 0.7, 0.9], {}, r"only one label \(0\)", id="one-class"),
    pytest.param([0, 0, 0], [0.2, 0.7, 0.9], {"labels": [0]}, r"at least two labels, got \[0\]", id="one-label"),
    pytest.param(
        [0, 1, 4], np.full((3, 3), 1 / 3), {"labels": [0, 1, 3]}, r"values \[4\] not belonging", id="undeclared"
    ),
    pytest.param([0, 1, 1], np.full((3, 3), 1 / 3), {}, "different number of classes: 2 vs 3", id="columns"),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"labels": [0, 1, 2]}, "3 labels.*2 columns", id="columns-labels"),
    pytest.param([0.5, 1.5, 1], [0.2, 0.7, 0.9], {}, "target type 'continuous'", id="continuous"),
    pytest.param([[0, 1, 2], [1, 0, 1]], [[0.2, 0.7], [0.1, 0.3]], {}, "multiclass-multioutput", id="multioutput"),
    pytest.param(["a", 1, "b"], [0.2, 0.7, 0.9], {}, "Mix of label input types", id="mixed-labels"),
    pytest.param([0, 1, 1], [[[0.2]], [[0.7]], [[0.9]]], {}, "dim 3", id="3d"),
    pytest.param([], [], {}, "0 sample", id="empty"),
    pytest.param([0, 1, 1], np.array(["a", "b", "c"]), {}, "could not convert", id="strings"),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"normalize": 1}, "`normalize` must be a bool", id="normalize"),
    pytest.param([0, 1], sp.csr_matrix([[0.2, 0.8], [0.6, 0.4]]), {}, "dense data is required", id="sparse"),
    pytest.param([0, 1, 1], [0.2, 0.7, 0.9], {"sample_weight": [1, -1, 0]}, "Weights sum to zero", id="w-sum-zero"),
]


@pytest.mark.parametrize(("y_true", "y_proba", "kwargs", "match"), BAD_INPUTS)
def test_raises_what_log_loss_raises(y_true, y_proba, kwargs, match):
    ours = _same_as_log_loss(y_true, y_proba, **kwargs)
    assert isinstance(ours, Exception), "log_loss accepted this input: not a bad-input case"
    assert re.search(match, str(ours)), f"{match!r} not in {ours}"


def test_row_sum_warning_is_log_losss():
    with pytest.warns(UserWarning, match=rf"^{NOT_ONE}\. Make sure to pass probabilities\. .*\[0\.5, 1\]"):
        cross_entropy_loss([0, 1, 2], [[0.2, 0.3, 0.5], [0.2, 0.3, 0.0], [0.1, 0.1, 0.8]])


# ---------------------------------------------------------------- options log_loss does not have


def test_logits_and_log_probs_match_scipy_references(rng):
    z = rng.normal(scale=30, size=(200, 5))  # large margins: a naive softmax would give log(0)
    y = rng.integers(0, 5, size=200)
    expected = np.mean(logsumexp(z, axis=1) - z[np.arange(200), y])
    assert_allclose(cross_entropy_loss(y, z, input_format="logits"), expected, rtol=RTOL)
    log_p = z - logsumexp(z, axis=1, keepdims=True)
    assert_allclose(cross_entropy_loss(y, log_p, input_format="log_probs"), expected, rtol=1e-10)
    margin, yb = z[:, 0], y % 2
    expected_b = -np.mean(yb * log_expit(margin) + (1 - yb) * log_expit(-margin))
    assert_allclose(cross_entropy_loss(yb, margin, input_format="logits"), expected_b, rtol=RTOL)
    assert_allclose(cross_entropy_loss([1, 0], [-800.0, 800.0], input_format="logits"), 800.0, rtol=RTOL)


def test_average_none_and_macro_are_per_true_class_means(rng):
    proba = rng.dirichlet(np.ones(3), size=90)
    y = rng.integers(0, 3, size=90)
    w = rng.uniform(0.1, 2, size=90)
    per_class = [log_loss(y[y == c], proba[y == c], labels=[0, 1, 2], sample_weight=w[y == c]) for c in range(3)]
    assert_allclose(cross_entropy_loss(y, proba, sample_weight=w, average="none"), per_class, rtol=RTOL)
    assert_allclose(cross_entropy_loss(y, proba, sample_weight=w, average="macro"), np.mean(per_class), rtol=RTOL)
    sums = [log_loss(y[y == c], proba[y == c], labels=[0, 1, 2], normalize=False) for c in range(3)]
    assert_allclose(cross_entropy_loss(y, proba, average="none", normalize=False), sums, rtol=RTOL)
    yb, pb = y % 2, proba[:, 0]  # binary 1-D goes through the binary core, split per class
    per_b = [log_loss(yb[yb == c], pb[yb == c], labels=[0, 1]) for c in (0, 1)]
    assert_allclose(cross_entropy_loss(yb, pb, average="none"), per_b, rtol=RTOL)


def test_macro_skips_a_class_absent_from_y_true_with_a_warning():
    with pytest.warns(UserWarning, match="average='macro' skipped 1 classes"):
        value = cross_entropy_loss([0, 0, 1], np.full((3, 3), 1 / 3), labels=[0, 1, 2], average="macro")
    assert_allclose(value, np.log(3), rtol=RTOL)


# ---------------------------------------------------------------- multilabel


def _per_column(Y, columns, **kwargs):
    return np.array([log_loss(Y[:, k], col, labels=[0, 1], **kwargs) for k, col in enumerate(columns)])


@pytest.fixture
def multilabel(rng):
    Y = rng.integers(0, 2, size=(80, 4))
    P = rng.uniform(0, 1, size=(80, 4))
    P[:5, 0], P[5:10, 1] = 0.0, 1.0  # clipping
    return Y, P, rng.uniform(0, 2, size=80)


def test_multilabel_matrix_is_the_mean_of_per_column_log_loss(multilabel):
    Y, P, w = multilabel
    per = _per_column(Y, P.T, sample_weight=w)
    assert_allclose(cross_entropy_loss(Y, P, sample_weight=w), per.mean(), rtol=RTOL)
    assert_allclose(cross_entropy_loss(Y, P, sample_weight=w, average="macro"), per.mean(), rtol=RTOL)
    assert_allclose(cross_entropy_loss(Y, P, sample_weight=w, average="none"), per, rtol=RTOL)
    sums = _per_column(Y, P.T, sample_weight=w, normalize=False)
    assert_allclose(cross_entropy_loss(Y, P, sample_weight=w, normalize=False), sums.mean(), rtol=RTOL)
    assert_allclose(cross_entropy_loss(Y, P, sample_weight=w, normalize=False, average="none"), sums, rtol=RTOL)
    assert_allclose(cross_entropy_loss(sp.csr_matrix(Y), pd.DataFrame(P)), _per_column(Y, P.T).mean(), rtol=RTOL)
    with pytest.warns(UserWarning, match=NOT_ONE):  # sklearn #10157: log_loss computes a different quantity
        assert not np.isclose(cross_entropy_loss(Y, P), log_loss(Y, P))


def test_multilabel_list_of_per_output_arrays(multilabel):
    Y, P, w = multilabel
    outputs = [np.column_stack([1 - p, p]) for p in P.T]
    outputs[2][:, 0] *= 0.999  # log_loss reads both columns: so do we
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # that output's rows do not sum to 1: both warn
        expected = _per_column(Y, outputs, sample_weight=w)
    with pytest.warns(UserWarning, match=r"y_proba\[2\]"):
        assert_allclose(cross_entropy_loss(Y, outputs, sample_weight=w, average="none"), expected, rtol=RTOL)


def test_multilabel_single_class_output_is_padded_from_labels(multilabel):
    Y, P, _ = multilabel
    outputs = [np.column_stack([1 - p, p]) for p in P.T]
    outputs[1], outputs[3] = np.ones((80, 1)), np.ones((80, 1))  # estimators that saw only 0 / only 1
    labels = [[0, 1], [0], [0, 1], [1]]
    padded = [
        outputs[0],
        np.column_stack([np.ones(80), np.zeros(80)]),
        outputs[2],
        np.column_stack([np.zeros(80), np.ones(80)]),
    ]
    expected = _per_column(Y, padded)
    assert_allclose(cross_entropy_loss(Y, outputs, labels=labels, average="none"), expected, rtol=RTOL)
    with np.errstate(divide="ignore"):
        logs = [np.log(o) for o in outputs]
    got = cross_entropy_loss(Y, logs, labels=labels, input_format="log_probs", average="none")
    assert Y[:, 1].any() and not Y[:, 3].all()  # the padded classes are true labels of some rows
    assert_allclose(got[1:], expected[1:], rtol=1e-10)  # a padded class is log(eps), the clipped zero of probs
    assert got[0] == np.inf  # output 0 has exact zeros: clipped as probabilities, log 0 = -inf as given


def test_multilabel_logits_and_log_probs_match_scipy(multilabel):
    Y, _, w = multilabel
    Z = np.random.default_rng(1).normal(scale=20, size=Y.shape)
    per = -(Y * log_expit(Z) + (1 - Y) * log_expit(-Z))
    expected = (per * w[:, None]).sum(0) / w.sum()
    assert_allclose(
        cross_entropy_loss(Y, Z, input_format="logits", sample_weight=w, average="none"), expected, rtol=RTOL
    )
    got = cross_entropy_loss(Y, log_expit(Z), input_format="log_probs", sample_weight=w)
    assert_allclose(got, expected.mean(), rtol=1e-9)


def test_one_hot_y_true_warns_that_it_is_read_as_multilabel():
    with pytest.warns(UserWarning, match=r"one-hot indicator.*y_true.argmax\(1\)"):
        cross_entropy_loss([[1, 0, 0], [0, 1, 0]], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])


def test_multilabel_y_true_with_rows_of_y_proba_summing_to_1_does_not_warn():
    """Only a one-hot ``y_true`` is ambiguous: rows with two labels are multilabel whatever ``y_proba`` sums to."""
    y_true, y_proba = np.array([[1, 1, 0], [0, 1, 1]]), np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    expected = np.mean([log_loss(y_true[:, k], y_proba[:, k], labels=[0, 1]) for k in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_allclose(cross_entropy_loss(y_true, y_proba), expected, rtol=RTOL)


# ---------------------------------------------------------------- our own errors


@pytest.mark.parametrize(
    ("y_true", "y_proba", "kwargs", "error", "match"),
    [
        ([0, 1], [0.2, 0.7], {"input_format": "probabilities"}, ValueError, "`input_format` must be one of"),
        ([0, 1], [0.2, 0.7], {"average": "weighted"}, ValueError, "`average` must be one of"),
        ([0, 1], [0.2, 0.7], {"average": "macro", "normalize": False}, ValueError, "mean of means"),
        ([0, 1], [-0.2, 0.1], {"input_format": "log_probs"}, ValueError, "must be <= 0, got a maximum of 0.1"),
        ([0, 1], [-0.2, np.nan], {"input_format": "log_probs"}, ValueError, "y_proba contains NaN"),
        ([0, 1], [0.2, 0.7], {"sample_weight": [-3, 1], "average": "none"}, ValueError, "sums to -2 < 0"),
        (
            [[0, 1], [1, 1]],
            [np.eye(2)] * 2,
            {"input_format": "logits"},
            ValueError,
            "input_format='probs' or 'log_probs'",
        ),
        ([[0, 1], [1, 1]], [np.eye(2)] * 3, {}, ValueError, "list of 3 arrays but `y_true` has 2 labels"),
        ([[0, 1], [1, 1]], [np.eye(2)] * 2, {"labels": [[0, 1]]}, ValueError, "classes of each of the 2 outputs"),
        (
            [[0, 1], [1, 1]],
            [np.ones((2, 1))] * 2,
            {},
            ValueError,
            r"y_proba\[0\]` has shape \(2, 1\).*labels=estimator",
        ),
        ([[0, 1], [1, 1]], [np.ones((2, 1))] * 2, {"labels": [[2], [1]]}, ValueError, r"labels\[0\] must list"),
        ([[0, 1], [1, 1]], [np.eye(2), np.eye(2)[:1]], {}, ValueError, r"`y_true` has 2, `y_proba\[1\]` has 1"),
        ([[0, 1], [1, 1]], np.eye(2), {"labels": [0, 1]}, ValueError, "`labels` is only used for a multilabel"),
        ([[0, 1], [1, 1]], np.ones((2, 3)) / 2, {}, ValueError, r"same shape.*got shape \(2, 3\)"),
    ],
)
def test_errors_name_the_argument(y_true, y_proba, kwargs, error, match):
    with pytest.raises(error, match=match):
        cross_entropy_loss(y_true, y_proba, **kwargs)
