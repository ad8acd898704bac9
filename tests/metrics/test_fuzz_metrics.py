"""Fuzz every Metric class: random sequences of ``update`` / ``forward`` / ``compute`` / ``reset``.

Each example builds one metric with drawn options and runs a few operations on generated batches (every
dtype, NaN and +-inf, far out-of-range values, empty and 0-d tensors, strided and expanded layouts, numpy
arrays and lists, complex and meta-device tensors, wrong shapes). The contract, checked on every call:

- a batch is accepted exactly when the functional API accepts it with the same options; a rejected call
  raises the functional's ``TypeError`` / ``ValueError``, its message names the argument, and the state
  (``sums``, update count, the ``compute`` result) is bit-for-bit as before, NaN positions included;
- ``forward`` returns the functional value of its batch, and ``compute`` the functional value of all the
  batches accepted since the last ``reset``, concatenated (1e-12 relative);
- the same accepted batches through a twin built with ``validate_args=False`` give the same sums, bit for bit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from helpers.fuzz import DTYPES, FLOATS, NAMED_ARGUMENT, Batch, Stream, arrays, batches, outcome, quiet, same_bits
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics import Metric

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)
from xent_metrics.functional import (
    binary_cross_entropy,
    binary_normalized_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
    multilabel_normalized_entropy,
)

FUZZ = settings(max_examples=max(70, settings.default.max_examples))
#: Outcomes per entry point, printed in the terminal summary (see conftest.py).
FUZZ_OUTCOMES: Counter = Counter()


def perplexity(preds: Any, target: Any, *, sample_weight: Any = None, **options: Any) -> torch.Tensor:
    """The documented Perplexity: ``exp`` of the multiclass functional on ``(..., V)`` moved to ``(N, V, ...)``."""
    if isinstance(preds, torch.Tensor) and preds.ndim > 2:
        preds = preds.movedim(-1, 1)
    value = torch.exp(multiclass_cross_entropy(preds, target, sample_weight=sample_weight, **options))
    if target.dtype == torch.bool:  # the multiclass functional takes bool class indices; token ids are integers
        raise TypeError("`target` must hold integer token ids")
    return value


@dataclass(frozen=True)
class Spec:
    """A Metric class, its functional twin and how to draw its batches."""

    make: Callable[..., Metric]
    functional: Callable[..., torch.Tensor]
    kind: str  # "binary", "multiclass", "multilabel" or "lm"
    averaged: bool = False
    class_weight: str | None = None  # the constructor's per-class / per-label weight argument


SPECS = {
    "BinaryCrossEntropy": Spec(BinaryCrossEntropy, binary_cross_entropy, "binary", class_weight="pos_weight"),
    "BinaryNormalizedEntropy": Spec(
        BinaryNormalizedEntropy, binary_normalized_entropy, "binary", class_weight="pos_weight"
    ),
    "MulticlassCrossEntropy": Spec(MulticlassCrossEntropy, multiclass_cross_entropy, "multiclass", True, "weight"),
    "MulticlassNormalizedEntropy": Spec(
        MulticlassNormalizedEntropy, multiclass_normalized_entropy, "multiclass", True, "weight"
    ),
    "MultilabelCrossEntropy": Spec(MultilabelCrossEntropy, multilabel_cross_entropy, "multilabel", True, "pos_weight"),
    "MultilabelNormalizedEntropy": Spec(
        MultilabelNormalizedEntropy, multilabel_normalized_entropy, "multilabel", True, "pos_weight"
    ),
    "Perplexity": Spec(Perplexity, perplexity, "lm"),
}


@st.composite
def setups(draw: st.DrawFn, name: str) -> tuple[Metric, dict[str, Any], Stream]:
    """A metric with drawn options, the same options for the functional, and the stream of its batches."""
    spec = SPECS[name]
    kind = spec.kind
    k = draw(st.integers(2, 4))
    fmt = draw(st.sampled_from(["logits", "probs", "log_probs"]))
    ignore = draw(st.sampled_from([None, {"binary": -1, "multilabel": -1, "multiclass": k, "lm": -100}[kind]]))
    preds_dtype = draw(st.sampled_from(FLOATS * 4 + DTYPES[:4]))
    index_dtypes = [torch.int64, torch.int32, torch.uint8] if ignore is None or ignore >= 0 else [torch.int64]
    binary_dtypes = [torch.bool, torch.float32, *index_dtypes] if ignore is None else [*index_dtypes, torch.float64]
    target_dtype = draw(st.sampled_from(binary_dtypes if kind in ("binary", "multilabel") else index_dtypes))
    extra = draw(st.sampled_from([(), (), (2,)]))
    stream = Stream(kind, k, extra, fmt, preds_dtype, target_dtype, draw(st.booleans()), draw(st.booleans()), ignore)
    options: dict[str, Any] = {"input_format": fmt, "ignore_index": ignore}
    if kind != "lm":
        options["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1]))
    if spec.averaged:
        options["average"] = draw(st.sampled_from(["micro", "macro", "none"]))
    if spec.class_weight and draw(st.booleans()):
        size = 1 if kind == "binary" else k
        options[spec.class_weight] = torch.from_numpy(draw(arrays((size,), "probs", corrupt=False)) + 0.25)
    count = {"multiclass": "num_classes", "multilabel": "num_labels"}.get(kind)
    metric = spec.make(**options, **({count: k} if count else {}))
    return metric, options, stream


def _concatenated(accepted: list[Batch], stream: Stream) -> Batch:
    preds = torch.cat([p.reshape(-1, *stream.extra) if p.ndim == 0 else p for p, _, _ in accepted])
    target = torch.cat([t.reshape(-1, *stream.extra) if t.ndim == 0 else t for _, t, _ in accepted])
    if all(w is None for _, _, w in accepted):
        return preds, target, None
    weights = []
    for _, t, w in accepted:
        shape = tuple(t.shape) if stream.per_position else tuple(t.shape[:1])
        weights.append(torch.ones(shape or (1,), dtype=torch.float64) if w is None else w.reshape(shape or (1,)))
    return preds, target, torch.cat([w.to(torch.float64) for w in weights])


def _expected_compute(spec: Spec, options: dict, accepted: list[Batch], stream: Stream, size: int) -> torch.Tensor:
    """The functional result on everything accepted since the last reset (all nan when nothing was)."""
    if not accepted:
        return torch.full((size,) if options.get("average") == "none" else (), math.nan, dtype=torch.float64)
    preds, target, weight = _concatenated(accepted, stream)
    with quiet():
        return spec.functional(preds, target, sample_weight=weight, **options)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float64 and actual.shape == expected.shape
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-12, atol=0)


def _snapshot(metric: Metric) -> tuple[torch.Tensor, int, torch.Tensor]:
    with quiet():
        value = metric.compute().clone()
    return metric.sums.clone(), metric.update_count, value


def _check_rejected(name: str, op: str, err: Exception, expected_err: Exception | None, metric, before) -> None:
    assert expected_err is not None, f"{name}.{op} rejected what the functional accepts: {err!r}"
    assert type(err) is type(expected_err), f"{name}.{op} raised {err!r}, the functional {expected_err!r}"
    assert NAMED_ARGUMENT.search(str(err)), f"{name}.{op} error does not name the argument: {err}"
    sums, count, value = before
    assert same_bits(metric.sums, sums), f"a rejected {op} changed the state"
    assert metric.update_count == count, f"a rejected {op} changed the update count"
    assert same_bits(_snapshot(metric)[2], value), f"a rejected {op} changed the compute result"
    FUZZ_OUTCOMES[f"{name}.{op}: rejected with a named error, state unchanged"] += 1


def _run_sequence(name: str, data: st.DataObject) -> None:
    spec = SPECS[name]
    metric, options, stream = data.draw(setups(name))
    size = 1 if stream.kind in ("binary", "lm") else stream.k
    accepted: list[Batch] = []
    for op in data.draw(
        st.lists(st.sampled_from(["update"] * 3 + ["forward"] * 2 + ["reset"]), min_size=1, max_size=5)
    ):
        if op == "reset":
            metric.reset()
            accepted.clear()
            continue
        preds, target, weight = batch = data.draw(batches(stream))
        expected, expected_err = outcome(spec.functional, preds, target, sample_weight=weight, **options)
        before = _snapshot(metric)
        call = metric.update if op == "update" else metric
        value, err = outcome(call, preds, target, sample_weight=weight)
        if err is not None:
            _check_rejected(name, op, err, expected_err, metric, before)
            continue
        assert expected_err is None, f"{name}.{op} accepted what the functional rejects ({expected_err!r})"
        accepted.append(batch)
        if op == "forward":
            _close(value, expected)
        FUZZ_OUTCOMES[f"{name}.{op}: accepted, equal to the functional"] += 1
    with quiet():
        computed = metric.compute()
    _close(computed, _expected_compute(spec, options, accepted, stream, size))
    FUZZ_OUTCOMES[f"{name}.compute: equal to the functional on the concatenated batches"] += 1
    _check_unvalidated_replay(spec, options, stream, accepted, metric)
    FUZZ_OUTCOMES[f"{name}(validate_args=False): accepted batches replayed, same bits"] += 1


def _check_unvalidated_replay(spec: Spec, options: dict, stream: Stream, accepted: list[Batch], metric: Metric) -> None:
    """``validate_args=False`` skips value checks only: batches the checks accept give the same sums, bit for bit."""
    count = {"multiclass": "num_classes", "multilabel": "num_labels"}.get(stream.kind)
    twin = spec.make(**options, validate_args=False, **({count: stream.k} if count else {}))
    for preds, target, weight in accepted:
        with quiet():  # the row-sum warning for probabilities is a value check: the twin does not warn
            twin.update(preds, target, sample_weight=weight)
    assert same_bits(twin.sums, metric.sums), "validate_args=False accumulated other sums than validate_args=True"


@pytest.mark.parametrize("name", sorted(SPECS))
@FUZZ
@given(data=st.data())
def test_fuzz_metric_sequences(name: str, data: st.DataObject) -> None:
    _run_sequence(name, data)


@pytest.mark.parametrize("shape", [(5, 2), (5, 2, 3), (140_000, 2)])  # the last: beyond the one-block path
def test_bool_class_indices_equal_int64_ones(shape: tuple[int, ...]) -> None:
    """Found by the fuzz: bool class indices of (N, C, ...) inputs (or beyond one block) hit a bool ``bincount``."""
    preds = torch.randn(shape, dtype=torch.float64)
    target = torch.rand((shape[0], *shape[2:])) < 0.5
    metric = MulticlassCrossEntropy(2, average="none")
    metric.update(preds, target)
    expected = MulticlassCrossEntropy(2, average="none")
    expected.update(preds, target.long())
    assert torch.equal(metric.sums, expected.sums)
    torch.testing.assert_close(multiclass_cross_entropy(preds, target), multiclass_cross_entropy(preds, target.long()))


@pytest.mark.parametrize(
    ("make", "preds", "target", "ignore"),
    [
        (BinaryCrossEntropy, torch.zeros(3), torch.tensor([255, 0, 1], dtype=torch.uint8), -1),
        (BinaryCrossEntropy, torch.zeros(3), torch.tensor([1, 0, 1], dtype=torch.uint8), 256),
        (
            lambda **kw: MulticlassCrossEntropy(2, **kw),
            torch.zeros(3, 2),
            torch.tensor([255, 0, 1], dtype=torch.uint8),
            -1,
        ),
        (
            lambda **kw: MultilabelCrossEntropy(2, **kw),
            torch.zeros(1, 2),
            torch.tensor([[1, 0]], dtype=torch.int8),
            200,
        ),
        (Perplexity, torch.zeros(1, 3, 2), torch.tensor([[1, 0, 1]], dtype=torch.int32), 2**31),
    ],
)
def test_an_ignore_index_the_target_dtype_cannot_hold_is_refused(make, preds, target, ignore) -> None:
    """Found by the fuzz: torch compares a uint8 target with -1 as 255 (binary: 255 silently ignored; multiclass:
    an IndexError from the kernel), and with 256 as 0 (every negative silently dropped)."""
    metric = make(ignore_index=ignore)
    with pytest.raises(ValueError, match=rf"`ignore_index`={ignore} does not fit `target` dtype {target.dtype}"):
        metric.update(preds, target)
    assert not metric.sums.any() and metric.update_count == 0
    metric.update(preds, torch.zeros_like(target, dtype=torch.long))  # int64 targets, as the message says
    assert metric.sums.any()
