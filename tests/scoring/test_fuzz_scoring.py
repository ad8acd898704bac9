"""Fuzz the scikit-learn face: ``cross_entropy_loss`` and the scorers on generated, often broken, inputs.

``y_true`` comes as ints, strings or bools, in a list, a numpy array, a column or a 0-d array; ``y_proba``
in every dtype (bool, ints, float16, float32, float64, complex), with NaN, +-inf and far out-of-range
values, empty, 0-d, non-contiguous, expanded (stride 0), as a list or a torch tensor (meta included);
``labels`` and ``sample_weight`` sometimes wrong. The contract: the value of
:func:`sklearn.metrics.log_loss` (1e-12 relative) when it accepts the input, else a ``ValueError`` /
``TypeError`` naming the argument (or the estimator, for a scorer). Logits and log-probabilities are
checked against a float64 scipy reference.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from helpers.fuzz import outcome, quiet
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_expit, log_softmax
from sklearn.metrics import log_loss

from xent_metrics.scoring import cross_entropy_loss, make_cross_entropy_scorer, neg_cross_entropy_scorer

FUZZ = settings(max_examples=max(100, settings.default.max_examples))
#: Outcomes per entry point, printed in the terminal summary (see conftest.py).
FUZZ_OUTCOMES: Counter = Counter()
ARGUMENT = re.compile(r"\b(y_true|y_proba|y_prob|labels|sample_weight|input_format|average|Fitted)\b")
SCORE_DTYPES = [np.float64, np.float64, np.float32, np.float16, np.int64, np.bool_]
NAMES = {"int": [3, 7, 11, 20], "str": ["ant", "bee", "cat", "dog"], "bool": [False, True]}
#: At most one fault per example, so that most examples are valid and reach the value comparison.
FAULTS = ["none"] * 6 + ["y_true", "shape", "values", "dtype", "layout", "labels", "sample_weight"]


@st.composite
def labels_of(draw: st.DrawFn, c: int, fault: str) -> tuple[list, Any, Any]:
    """``(classes, y_true, labels)``: the classes, labels drawn from them (dressed) and a ``labels`` option."""
    kind = draw(st.sampled_from(["int", "str"] + (["bool"] if c == 2 else [])))
    classes = NAMES[kind][:c]
    n = draw(st.integers(0, 3) if fault == "y_true" else st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = [classes[i] for i in rng.integers(0, c, size=n)]
    bad_labels = [classes[::-1], classes[:-1], classes[:1]]
    labels = draw(st.sampled_from(bad_labels if fault == "labels" else [None, classes]))
    dresses = ["list", "numpy", "column", "tensor"] + (["0-d", "2-d"] if fault == "y_true" else [])
    dress = draw(st.sampled_from(dresses))
    if dress == "numpy":
        return classes, np.asarray(y), labels
    if dress == "column":
        return classes, np.asarray(y).reshape(-1, 1), labels
    if dress == "0-d" and y:
        return classes, np.asarray(y[0]), labels
    if dress == "2-d":
        return classes, np.asarray(y * 2).reshape(2, -1), labels
    if dress == "tensor" and kind == "int":
        return classes, torch.tensor(y, dtype=torch.long), labels
    return classes, y, labels


@st.composite
def scores_of(draw: st.DrawFn, n: int, c: int, fmt: str, fault: str) -> Any:
    """``(n, c)`` or ``(n,)`` scores for ``fmt``, with the fault asked for, in a drawn dtype and layout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shapes = [(n, c + 1), (n + 1, c), (n, c, 1), ()] if fault == "shape" else [(n, c), (n,) if c == 2 else (n, c)]
    shape = draw(st.sampled_from(shapes))
    if fmt == "probs":
        values = rng.dirichlet(np.ones(c), size=n) if shape == (n, c) else rng.uniform(size=shape)
        if draw(st.integers(0, 3)) == 0 and values.size:  # certain predictions: the clipping path
            values.reshape(-1)[rng.integers(0, values.size)] = draw(st.sampled_from([0.0, 1.0]))
    elif fmt == "logits":
        values = rng.normal(scale=draw(st.sampled_from([1.0, 50.0])), size=shape)
    elif len(shape) == 2 and shape[1] >= 2:
        values = log_softmax(rng.normal(size=shape), axis=1)
    else:
        values = np.log(rng.uniform(size=shape))
    if fault == "values" and values.size:
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 1e300, -1e300]))
        values.reshape(-1)[rng.integers(0, values.size)] = bad
    dtype = draw(st.sampled_from([np.complex128, np.str_] if fault == "dtype" else SCORE_DTYPES))
    with np.errstate(all="ignore"):
        values = values.astype(dtype)
    layouts = ["meta", "0-d", "ragged"] if fault == "layout" else ["plain"] * 3 + ["strided", "expanded", "list"]
    layout = draw(st.sampled_from([*layouts, "tensor"]))
    if layout == "strided" and values.ndim:
        values = np.repeat(values, 2, axis=0)[::2]
    elif layout == "expanded" and values.ndim and len(values):
        values = np.broadcast_to(values[:1], values.shape)
    elif layout == "list":
        values = values.tolist()
    elif layout in ("tensor", "meta") and values.dtype.kind in "fb":
        values = torch.from_numpy(np.ascontiguousarray(values)).to("cpu" if layout == "tensor" else "meta")
    elif layout == "0-d" and values.size:
        values = values.reshape(-1)[0]
    elif layout == "ragged" and values.ndim == 2 and len(values):
        values = [row[: 1 + k % values.shape[1]].tolist() for k, row in enumerate(values)]
    return values


@st.composite
def weights_of(draw: st.DrawFn, n: int, fault: str) -> Any:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kinds = ["bad", "short", "scalar", "zeros"] if fault == "sample_weight" else ["none", "none", "ok", "list"]
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    weight = rng.uniform(0.1, 2.0, size=n)
    if kind == "list":
        return weight.tolist()
    if kind == "bad" and n:
        weight[rng.integers(0, n)] = draw(st.sampled_from([np.nan, np.inf, -1.0]))
    if kind == "short":
        return weight[1:]
    if kind == "scalar":
        return 1.0
    if kind == "zeros":
        return np.zeros(n)
    return weight


def _reference(y_true: Any, y_proba: Any, labels: Any, sample_weight: Any, fmt: str) -> float:
    """``log_loss``; for logits and log-probabilities, ``log_loss``'s checks and a float64 scipy value."""
    if fmt == "probs":
        return log_loss(y_true, y_proba, labels=labels, sample_weight=sample_weight)
    if np.iscomplexobj(y_proba) or (isinstance(y_proba, torch.Tensor) and y_proba.is_complex()):
        raise ValueError("complex y_proba is refused (scikit-learn: 'Complex data not supported')")
    scores = np.asarray(y_proba, dtype=np.float64)  # raises for a meta tensor or strings: the input is refused
    if np.isnan(scores).any() or np.isposinf(scores).any() or (fmt == "logits" and np.isneginf(scores).any()):
        raise ValueError("y_proba contains NaN or inf")
    if fmt == "log_probs" and (scores > 0).any():
        raise ValueError("y_proba log-probabilities above 0")
    if scores.ndim not in (1, 2):
        raise ValueError("y_proba must be 1-D or 2-D")
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        logp1 = log_expit(scores) if fmt == "logits" else scores
        logp0 = log_expit(-scores) if fmt == "logits" else np.log1p(-np.exp(scores))
        logp = np.stack([logp0, logp1], axis=1) if scores.size else np.zeros((0, 2))
    else:
        logp = log_softmax(scores, axis=1) if fmt == "logits" else scores
    # log_loss on probabilities of that shape checks y_true, labels, lengths and weights exactly as we must
    log_loss(y_true, np.full_like(logp, 1 / logp.shape[1]), labels=labels, sample_weight=sample_weight)
    y = np.asarray(y_true).reshape(-1)
    classes = np.unique(y if labels is None else np.asarray(labels))
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    picked = logp[np.arange(len(y)), np.searchsorted(classes, y)]
    return float(-np.sum(w * picked) / np.sum(w))


def _tolerance(y_proba: Any) -> dict[str, float]:
    """float64 work matches to 1e-12; float32 / float16 input is computed in that dtype (log_loss too, or we).

    Below float64 a logit margin ``m`` loses ``exp(-m)`` to absorption in the log-sum-exp, so an absolute
    tolerance of a few ``eps * max|score|`` covers the smallest losses.
    """
    dtype = getattr(y_proba, "dtype", None)
    eps = {np.dtype(np.float32): 2**-23, np.dtype(np.float16): 2**-10, torch.float32: 2**-23, torch.float16: 2**-10}
    if dtype not in eps:
        return {"rtol": 1e-12, "atol": 0.0}
    try:
        with quiet():
            values = np.abs(np.asarray(y_proba, dtype=np.float64))
            scale = float(np.max(values[np.isfinite(values)], initial=1.0))
    except (TypeError, ValueError):  # a meta tensor, strings: the input is refused, no value is compared
        scale = 1.0
    return {"rtol": 8 * eps[dtype], "atol": 8 * eps[dtype] * scale}


def _check(
    entry: str, value: Any, err: Exception | None, expected: Any, expected_err: Exception | None, tol: dict
) -> None:
    if err is not None:
        assert ARGUMENT.search(str(err)), f"{entry}: the error does not name the argument: {err!r}"
        assert expected_err is not None, f"{entry} rejected what the reference accepts ({expected}): {err!r}"
        FUZZ_OUTCOMES[f"{entry}: rejected with a named error"] += 1
        return
    assert expected_err is None, f"{entry} returned {value} where the reference raised {expected_err!r}"
    np.testing.assert_allclose(value, expected, **tol)
    FUZZ_OUTCOMES[f"{entry}: equal to the reference"] += 1


@FUZZ
@given(
    data=st.data(),
    c=st.integers(2, 4),
    fmt=st.sampled_from(["probs", "probs", "logits", "log_probs"]),
    fault=st.sampled_from(FAULTS),
)
def test_fuzz_cross_entropy_loss(data: st.DataObject, c: int, fmt: str, fault: str) -> None:
    _, y_true, labels = data.draw(labels_of(c, fault))
    n = np.asarray(y_true).size
    y_proba = data.draw(scores_of(n, c, fmt, fault))
    sample_weight = data.draw(weights_of(n, fault))
    expected, expected_err = outcome(_reference, y_true, y_proba, labels, sample_weight, fmt)
    value, err = outcome(
        cross_entropy_loss, y_true, y_proba, labels=labels, sample_weight=sample_weight, input_format=fmt
    )
    _check("cross_entropy_loss", value, err, expected, expected_err, _tolerance(y_proba))


class Fitted:
    """A fitted classifier stand-in: ``classes_`` and a canned ``predict_proba``."""

    def __init__(self, classes: list, response: Any) -> None:
        self.classes_ = np.asarray(classes)
        self.response = response

    def predict_proba(self, X: Any) -> Any:
        return self.response


@pytest.mark.parametrize("scorer_kind", ["neg_cross_entropy_scorer", "make_cross_entropy_scorer(labels=...)"])
@FUZZ
@given(data=st.data(), c=st.integers(2, 4), fault=st.sampled_from(FAULTS))
def test_fuzz_scorers(scorer_kind: str, data: st.DataObject, c: int, fault: str) -> None:
    classes, y_true, _ = data.draw(labels_of(c, fault))
    y = np.asarray(y_true).reshape(-1) if np.ndim(y_true) else np.asarray(y_true)
    fitted = data.draw(st.sampled_from([classes, classes, classes[:-1] if c > 2 else classes]))
    response = data.draw(scores_of(y.size, len(fitted), "probs", fault))
    estimator = Fitted(fitted, response)
    if scorer_kind == "neg_cross_entropy_scorer":
        scorer, space = neg_cross_entropy_scorer, fitted
    else:
        scorer, space = make_cross_entropy_scorer(labels=classes), classes
    sample_weight = data.draw(weights_of(y.size, fault))
    expected, expected_err = outcome(_scorer_reference, y_true, response, fitted, space, sample_weight)
    value, err = outcome(scorer, estimator, None, y_true, sample_weight=sample_weight)
    _check(scorer_kind, value, err, expected, expected_err, _tolerance(response))


def _scorer_reference(y_true: Any, raw: Any, fitted: list, classes: list, sample_weight: Any) -> float:
    """``-log_loss``, of the positive column for two classes, as scikit-learn's ``neg_log_loss`` scorer does.

    ``raw``, what ``predict_proba`` returned, must be ``(n_samples, len(classes_))`` and finite; it is padded
    with zero-probability columns to ``classes`` (the documented rule for classes a fold lacked).
    """
    with quiet():
        scores = raw = np.asarray(raw)  # a tensor response is read as its numpy array (float32 stays float32)
    if scores.dtype.kind == "c":
        raise ValueError("a complex response is refused")
    if scores.dtype.kind in "US":
        scores = raw = scores.astype(np.float64)  # numeric strings are read as numbers (log_loss does too)
    if scores.shape != (np.asarray(y_true).size, len(fitted)):
        raise ValueError("predict_proba must return one column per class of classes_")
    if scores.dtype.kind in "fiu" and not (np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()):
        raise ValueError("a response with NaN, inf or values outside [0, 1] is refused, whichever column holds it")
    response = _padded(raw, fitted, classes)
    if len(classes) == 2:
        response = np.asarray(response)[:, 1]
    return -log_loss(y_true, response, labels=classes, sample_weight=sample_weight)


def _padded(response: Any, fitted: list, classes: list) -> Any:
    """The response with a zero-probability column for each class the estimator never saw, in its float dtype.

    ``log_loss`` then clips the padded array with that dtype's eps (an int or bool response is read as float64).
    """
    if len(fitted) == len(classes):
        return response
    with quiet():
        scores = np.asarray(response)
    full = np.zeros((scores.shape[0], len(classes)), dtype=scores.dtype if scores.dtype.kind == "f" else np.float64)
    full[:, np.searchsorted(np.asarray(classes), np.asarray(fitted))] = scores
    return full


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y_true": [], "y_proba": np.zeros((0, 2))}, ValueError, r"^`y_proba`: Found array with 0 sample"),
        ({"y_proba": np.full((2, 2), 0.5, dtype=complex)}, ValueError, r"^`y_proba`: Complex data not supported"),
        ({"y_proba": torch.full((2, 2), 0.5, device="meta")}, TypeError, r"^`y_proba`: can't convert meta"),
        ({"sample_weight": np.zeros(0)}, ValueError, r"^`sample_weight`: Found array with 0 sample"),
    ],
)
def test_scikit_learn_array_errors_name_the_argument(kwargs: dict, error: type, match: str) -> None:
    """Found by the fuzz: ``check_array``'s own messages did not say which argument they were about."""
    arguments = {"y_true": [0, 1], "y_proba": np.full((2, 2), 0.5), **kwargs}
    with pytest.raises(error, match=match):
        cross_entropy_loss(arguments.pop("y_true"), arguments.pop("y_proba"), **arguments)
