"""Shape errors are raised with ``validate_args=False`` too: per public function and per Metric.

``validate_args=False`` skips the checks of values (a host read); the checks of shapes are metadata and stay: a
wrongly shaped ``sample_weight``, class ``weight`` or ``pos_weight``, ``preds`` and ``target`` that disagree, a
head of the wrong width. Each gets a ``ValueError`` naming the argument, and a Metric that refuses a batch keeps
its state. (With the checks gone, a ``(N,)`` weight against ``(N, L)`` positions would broadcast or index silently.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from helpers.cases import make

import xent_metrics.functional as F

N, C, L = 6, 4, 3
GEN = torch.Generator().manual_seed(11)
SCORES = torch.randn(N, C, generator=GEN)
CLASSES = torch.randint(0, C, (N,), generator=GEN)
LABELS = torch.randint(0, 2, (N, C), generator=GEN)
SEQ_SCORES = torch.randn(N, C, L, generator=GEN)
SEQ_CLASSES = torch.randint(0, C, (N, L), generator=GEN)

#: (name, call, match): each call a shape error the checks must catch with ``validate_args=False``.
FUNCTION_CASES: list[tuple[str, Callable[[], Any], str]] = []


def _case(name: str, match: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(call: Callable[[], Any]) -> Callable[[], Any]:
        FUNCTION_CASES.append((name, call, match))
        return call

    return register


_OFF = {"validate_args": False}
_BAD_WEIGHT = torch.ones(N + 1)  # one weight too many
for _fn in (F.binary_cross_entropy, F.binary_normalized_entropy):
    _case(f"{_fn.__name__}-sample_weight", r"`sample_weight` must have shape \(6,\).*got \(7,\)")(
        lambda fn=_fn: fn(SCORES[:, 0], LABELS[:, 0], sample_weight=_BAD_WEIGHT, **_OFF)
    )
    _case(f"{_fn.__name__}-target", r"same shape.*\(6,\) and \(5,\)")(
        lambda fn=_fn: fn(SCORES[:, 0], LABELS[:5, 0], **_OFF)
    )
    _case(f"{_fn.__name__}-pos_weight", r"`pos_weight` for the binary task must be a scalar, got shape \(2,\)")(
        lambda fn=_fn: fn(SCORES[:, 0], LABELS[:, 0], pos_weight=torch.ones(2), **_OFF)
    )
for _fn in (F.multiclass_cross_entropy, F.multiclass_normalized_entropy):
    _case(f"{_fn.__name__}-sample_weight", r"`sample_weight` must have shape \(6,\) or \(6, 3\), got \(6, 2\)")(
        lambda fn=_fn: fn(SEQ_SCORES, SEQ_CLASSES, sample_weight=torch.ones(N, 2), **_OFF)
    )
    _case(f"{_fn.__name__}-weight", r"`weight` must have shape \(4,\).*got \(3,\)")(
        lambda fn=_fn: fn(SCORES, CLASSES, weight=torch.ones(3), **_OFF)
    )
    _case(f"{_fn.__name__}-target", r"`target` must hold class indices of shape \(6,\)")(
        lambda fn=_fn: fn(SCORES, CLASSES[:5], **_OFF)
    )
for _fn in (F.multilabel_cross_entropy, F.multilabel_normalized_entropy):
    _case(f"{_fn.__name__}-sample_weight", r"`sample_weight` must have shape \(6,\).*got \(7,\)")(
        lambda fn=_fn: fn(SCORES, LABELS, sample_weight=_BAD_WEIGHT, **_OFF)
    )
    _case(f"{_fn.__name__}-pos_weight", r"`pos_weight` must have shape \(4,\).*got \(5,\)")(
        lambda fn=_fn: fn(SCORES, LABELS, pos_weight=torch.ones(5), **_OFF)
    )
    _case(f"{_fn.__name__}-target", r"same shape \(N, K, \.\.\.\).*\(6, 4\) and \(6, 3\)")(
        lambda fn=_fn: fn(SCORES, LABELS[:, :3], **_OFF)
    )
for _fn in (F.cross_entropy, F.normalized_entropy):
    _case(f"{_fn.__name__}-multiclass-sample_weight", r"`sample_weight` must have shape \(6,\).*got \(7,\)")(
        lambda fn=_fn: fn(SCORES, CLASSES, task="multiclass", sample_weight=_BAD_WEIGHT, **_OFF)
    )
_HIDDEN, _HEAD = torch.randn(N, 5, generator=GEN), torch.randn(C, 5, generator=GEN)
_case("linear_cross_entropy-sample_weight", r"`sample_weight` must have shape \(6,\).*got \(7,\)")(
    lambda: F.linear_cross_entropy(_HIDDEN, _HEAD, CLASSES, sample_weight=_BAD_WEIGHT, **_OFF)
)
_case("linear_cross_entropy-linear_weight", r"`linear_weight` must have shape \(V, 5\).*got \(4, 3\)")(
    lambda: F.linear_cross_entropy(_HIDDEN, _HEAD[:, :3], CLASSES, **_OFF)
)
_case("linear_cross_entropy-linear_bias", r"`linear_bias` must have shape \(4,\).*got \(2,\)")(
    lambda: F.linear_cross_entropy(_HIDDEN, _HEAD, CLASSES, linear_bias=torch.ones(2), **_OFF)
)
_case("linear_cross_entropy-weight", r"`weight` must have shape \(4,\).*got \(2,\)")(
    lambda: F.linear_cross_entropy(_HIDDEN, _HEAD, CLASSES, weight=torch.ones(2), **_OFF)
)
_case("linear_cross_entropy-target", r"`target` must hold one class index per row of `hidden`.*got \(5,\)")(
    lambda: F.linear_cross_entropy(_HIDDEN, _HEAD, CLASSES[:5], **_OFF)
)


@pytest.mark.parametrize(("call", "match"), [c[1:] for c in FUNCTION_CASES], ids=[c[0] for c in FUNCTION_CASES])
def test_function_raises_shape_errors_without_validation(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


#: (metric, good batch, bad batch, match): the bad batch a shape error, the good one to fill the state first.
METRIC_CASES = [
    ("BinaryCrossEntropy", (SCORES[:, 0], LABELS[:, 0]), (SCORES[:, 0], LABELS[:, 0], _BAD_WEIGHT), "sample_weight"),
    ("BinaryNormalizedEntropy", (SCORES[:, 0], LABELS[:, 0]), (SCORES[:, 0], LABELS[:5, 0]), "same shape"),
    ("MulticlassCrossEntropy", (SEQ_SCORES, SEQ_CLASSES), (SEQ_SCORES, SEQ_CLASSES, torch.ones(N, 2)), "sample_weight"),
    ("MulticlassNormalizedEntropy", (SCORES, CLASSES), (SCORES, CLASSES, _BAD_WEIGHT), "sample_weight"),
    ("MultilabelCrossEntropy", (SCORES, LABELS), (SCORES, LABELS, _BAD_WEIGHT), "sample_weight"),
    ("MultilabelNormalizedEntropy", (SCORES, LABELS), (SCORES, LABELS[:, :3]), "same shape"),
    ("Perplexity", (SEQ_SCORES.movedim(1, -1), SEQ_CLASSES), (SEQ_SCORES.movedim(1, -1), SEQ_CLASSES, torch.ones(N, 2)),
     "sample_weight"),
]


@pytest.mark.parametrize(("name", "good", "bad", "match"), METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_metric_refuses_a_misshapen_batch_without_validation_and_keeps_its_state(
    name: str, good: tuple, bad: tuple, match: str
) -> None:
    metric = make(name, C, validate_args=False)
    metric.update(*good)
    before = metric.sums.clone()
    with pytest.raises(ValueError, match=match):
        metric.update(*bad)
    assert torch.equal(metric.sums, before)
    reference = make(name, C, validate_args=True)
    reference.update(*good)
    torch.testing.assert_close(metric.compute(), reference.compute(), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_weight": _BAD_WEIGHT}, r"`sample_weight` must have shape \(6,\).*got \(7,\)"),
        ({"linear_bias": torch.ones(2)}, r"`linear_bias` must have shape \(4,\)"),
    ],
    ids=["sample_weight", "linear_bias"],
)
def test_hidden_state_update_refuses_a_misshapen_batch_without_validation(kwargs: dict, match: str) -> None:
    metric = make("MulticlassCrossEntropy", C, validate_args=False)
    metric.update(_HIDDEN, CLASSES, linear_weight=_HEAD)
    before = metric.sums.clone()
    with pytest.raises(ValueError, match=match):
        metric.update(_HIDDEN, CLASSES, linear_weight=_HEAD, **kwargs)
    assert torch.equal(metric.sums, before)
