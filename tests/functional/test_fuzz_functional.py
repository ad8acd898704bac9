"""Fuzz the functional API: every generated input gives the float64 reference or a named ValueError/TypeError.

Inputs cover every dtype (bool, integer, half, bfloat16, float, double, complex), NaN and +-inf, values far out
of range, empty and 0-d tensors, non-contiguous and expanded (stride 0) layouts, numpy arrays and lists.
"""

from collections import Counter

import numpy as np
import pytest
import torch
from helpers.fuzz import NAMED_ARGUMENT, Invalid, arrays, as_tensor, quiet
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_expit, log_softmax

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy

FUZZ = settings(max_examples=max(300, settings.default.max_examples))

#: Outcomes per entry point, printed in the terminal summary (see conftest.py).
FUZZ_OUTCOMES: Counter = Counter()


def _to64(x: object, name: str, *, floating: bool = False) -> np.ndarray:
    if not isinstance(x, torch.Tensor) or x.is_complex():
        raise Invalid(name)
    if floating and not x.is_floating_point():
        raise Invalid(name)
    return x.double().numpy()


def _eps(x: torch.Tensor) -> float:
    return float(torch.finfo(x.dtype).eps)


def _check_preds(z: np.ndarray, fmt: str) -> None:
    if fmt == "log_probs":
        if np.isnan(z).any() or (z > 0).any():
            raise Invalid("preds")
    elif not np.isfinite(z).all() or (fmt == "probs" and ((z < 0) | (z > 1)).any()):
        raise Invalid("preds")


def _weights(w: object, n: int, shapes: list[tuple]) -> np.ndarray | None:
    if w is None:
        return None
    arr = _to64(w, "sample_weight")
    if arr.shape not in shapes or not np.isfinite(arr).all() or (arr < 0).any() or (arr.size and not (arr != 0).any()):
        raise Invalid("sample_weight")
    return arr


def _binary_terms(z: np.ndarray, fmt: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        if fmt == "logits":
            return log_expit(z), log_expit(-z)
        if fmt == "probs":
            return np.log(np.clip(z, eps, 1 - eps)), np.log(np.clip(1 - z, eps, 1 - eps))
        return z, np.log1p(-np.exp(z))


def _weighted_mean(loss: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    return float(np.sum(np.where(w > 0, loss * w, 0.0)) / total) if total > 0 else float("nan")


def binary_reference(preds: object, target: object, w: object, fmt: str, ignore: int | None) -> float:
    z = _to64(preds, "preds", floating=True)
    y = _to64(target, "target")
    if z.shape != y.shape:
        raise Invalid("shape")
    weights = _weights(w, len(z), [z.shape[:1], z.shape] if z.ndim else [()])
    _check_preds(z, fmt)
    keep = np.ones_like(y, dtype=bool) if ignore is None else y != ignore
    yk = y[keep]
    if (
        not np.isfinite(yk).all()
        or ((yk < 0) | (yk > 1)).any()
        or (not target.is_floating_point() and ((yk != 0) & (yk != 1)).any())
    ):
        raise Invalid("target")
    wfull = (
        np.ones_like(z)
        if weights is None
        else np.broadcast_to(weights.reshape(weights.shape + (1,) * (z.ndim - weights.ndim)), z.shape)
    )
    wfull = wfull * keep
    y = np.where(keep, y, 0)
    logp, logq = _binary_terms(z, fmt, _eps(preds))
    with np.errstate(invalid="ignore"):
        loss = -(np.where(y != 0, y * logp, 0) + np.where(y != 1, (1 - y) * logq, 0))
    return _weighted_mean(loss, wfull)


def multiclass_reference(preds: object, target: object, w: object, fmt: str, ignore: int | None) -> float:
    z = _to64(preds, "preds", floating=True)
    if z.ndim != 2 or z.shape[1] < 2:
        raise Invalid("preds shape")
    if not isinstance(target, torch.Tensor) or target.is_complex() or target.is_floating_point():
        raise Invalid("target")
    t = target.long().numpy()
    if t.shape != z.shape[:1]:
        raise Invalid("target shape")
    weights = _weights(w, len(z), [z.shape[:1]])
    _check_preds(z, fmt)
    keep = np.ones_like(t, dtype=bool) if ignore is None else t != ignore
    if ((t[keep] < 0) | (t[keep] >= z.shape[1])).any():
        raise Invalid("target values")
    if fmt == "logits":
        logp = log_softmax(z, axis=1)
    elif fmt == "probs":
        logp = np.log(np.clip(z, _eps(preds), 1 - _eps(preds)))
    else:
        logp = z
    picked = logp[np.arange(len(t)), np.where(keep, t, 0)]
    wfull = (np.ones(len(t)) if weights is None else weights) * keep
    return _weighted_mean(-picked, wfull)


def _run(fn, reference, preds, target, w, fmt, ignore, **kw) -> None:
    try:
        expected = reference(preds, target, w, fmt, ignore)
    except Invalid:
        expected = None
    try:
        with quiet():
            value = fn(preds, target, input_format=fmt, sample_weight=w, ignore_index=ignore, **kw)
    except (TypeError, ValueError) as err:
        assert NAMED_ARGUMENT.search(str(err)), f"error does not name the argument: {err}"
        assert expected is None, f"rejected a valid input: {err}"
        FUZZ_OUTCOMES[f"{fn.__name__}: rejected with a named error"] += 1
        return
    assert expected is not None, "accepted an input the reference rejects"
    exact = isinstance(preds, torch.Tensor) and preds.dtype == torch.float64
    rtol = 1e-12 if exact else 2e-5
    np.testing.assert_allclose(value.item(), expected, rtol=rtol, atol=1e-12 if exact else 1e-6)
    FUZZ_OUTCOMES[f"{fn.__name__}: equal to the float64 reference"] += 1


@FUZZ
@given(
    data=st.data(),
    n=st.integers(0, 12),
    extra=st.sampled_from([(), (3,)]),
    fmt=st.sampled_from(["logits", "probs", "log_probs"]),
)
def test_fuzz_binary(data: st.DataObject, n: int, extra: tuple, fmt: str) -> None:
    shape = (n, *extra)
    preds = data.draw(as_tensor(data.draw(arrays(shape, fmt))))
    target = data.draw(as_tensor(data.draw(arrays(shape, "binary"))))
    ignore = data.draw(st.sampled_from([None, -1]))
    w = data.draw(st.one_of(st.none(), as_tensor(data.draw(arrays((n,), "probs")), torch.float64)))
    _run(binary_cross_entropy, binary_reference, preds, target, w, fmt, ignore)


@FUZZ
@given(data=st.data(), n=st.integers(0, 12), c=st.integers(1, 5), fmt=st.sampled_from(["logits", "probs", "log_probs"]))
def test_fuzz_multiclass(data: st.DataObject, n: int, c: int, fmt: str) -> None:
    preds = data.draw(as_tensor(data.draw(arrays((n, c), fmt))))
    index_dtype = data.draw(
        st.sampled_from([torch.int64, torch.int64, torch.int32, torch.uint8, torch.bool, torch.float32])
    )
    target = data.draw(as_tensor(data.draw(arrays((n,), f"index:{c + 1}")), index_dtype))
    ignore = data.draw(st.sampled_from([None, c]))
    w = data.draw(st.one_of(st.none(), as_tensor(data.draw(arrays((n,), "probs")), torch.float64)))
    _run(multiclass_cross_entropy, multiclass_reference, preds, target, w, fmt, ignore)


@FUZZ
@given(data=st.data(), n=st.integers(0, 10), k=st.integers(1, 4), fmt=st.sampled_from(["logits", "probs"]))
def test_fuzz_multilabel_equals_binary_per_column(data: st.DataObject, n: int, k: int, fmt: str) -> None:
    preds = data.draw(as_tensor(data.draw(arrays((n, k), fmt))))
    target = data.draw(as_tensor(data.draw(arrays((n, k), "binary"))))
    # the multilabel micro mean over an (n, k) matrix is the binary mean over its elements
    _run(multilabel_cross_entropy, binary_reference, preds, target, None, fmt, None)


@pytest.mark.parametrize("fn", [binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy])
def test_zero_dim_and_meta_inputs_are_named(fn) -> None:
    with pytest.raises((TypeError, ValueError), match=NAMED_ARGUMENT.pattern):
        fn(torch.zeros((), device="meta"), torch.zeros(()))
