"""Empty and degenerate data: empty batches, no data at all, classes with no weight, one-valued labels.

- An update with zero samples (a DDP rank's empty last batch) is a no-op, not an error.
- ``compute()`` with no data gives ``nan`` (one per class for ``average="none"``) and exactly one warning.
- A class or label with no weight gives ``nan`` in ``average="none"`` and is skipped, with one warning
  naming it, in ``"macro"``.
- All-positive or all-negative labels in normalized entropy give the documented value: ``nan`` and one
  warning (the base rate has zero entropy), or with label smoothing the ratio to the smoothed base rate.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from helpers import cases
from helpers.fuzz import same_bits
from scipy.special import log_expit, log_softmax
from torchmetrics import Metric

from xent_metrics import (
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
)

NO_DATA = "No samples with non-zero weight were seen"
ZERO_ENTROPY = "whose weighted base rate is 0 or 1 (zero entropy)"
K = 3
# name -> (factory, a valid batch of n samples), from the shared case module
Make = Callable[..., Metric]


def _batch(name: str) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    task = cases.kind(name)
    return functools.partial(cases.batch, task, k=K, positions=(2,) if task == "lm" else ())


CLASSES: dict[str, tuple[Make, Callable[[int], tuple[torch.Tensor, torch.Tensor]]]] = {
    name: (functools.partial(cases.make, name, K), _batch(name)) for name in cases.NAMES
}
AVERAGED = cases.AVERAGED
CASES = [(name, None) for name in CLASSES if name not in AVERAGED] + [
    (name, average) for name in AVERAGED for average in cases.AVERAGES
]


def _make(name: str, average: str | None, **kwargs: object) -> Metric:
    make = CLASSES[name][0]
    return make(**kwargs) if average is None else make(average=average, **kwargs)


def _recorded(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught]


def _assert_no_data(value: torch.Tensor, messages: list[str], average: str | None) -> None:
    assert value.dtype == torch.float64
    assert value.shape == ((K,) if average == "none" else ())
    assert torch.isnan(value).all()
    assert len(messages) == 1, messages
    assert NO_DATA in messages[0]


# ----------------------------------------------------------------------------------------- empty batches
@pytest.mark.parametrize(("name", "average"), CASES)
def test_an_empty_update_is_a_no_op(name: str, average: str | None) -> None:
    metric = _make(name, average)
    batch = CLASSES[name][1]
    metric.update(*batch(5))
    before = metric.sums.clone()
    expected, _ = _recorded(metric.compute)
    empty_preds, empty_target = batch(0)
    metric.update(empty_preds, empty_target)  # no error, no warning (filterwarnings = error)
    metric.update(empty_preds, empty_target, sample_weight=torch.ones(0))
    if name == "Perplexity":
        metric.update(torch.randn(4, 0, K), torch.zeros(4, 0, dtype=torch.long))  # sequences of length 0
    assert same_bits(metric.sums, before)
    assert same_bits(_recorded(metric.compute)[0], expected)


@pytest.mark.parametrize(("name", "average"), CASES)
def test_forward_on_an_empty_batch_adds_nothing_and_says_so(name: str, average: str | None) -> None:
    metric = _make(name, average)
    value, messages = _recorded(lambda: metric(*CLASSES[name][1](0)))
    _assert_no_data(value, messages, average)
    assert not metric.sums.any()


# ------------------------------------------------------------------------------------------------ no data
@pytest.mark.parametrize("how", ["never updated", "only empty batches", "every target ignored", "after reset"])
@pytest.mark.parametrize(("name", "average"), CASES)
def test_compute_without_data_is_nan_with_exactly_one_warning(name: str, average: str | None, how: str) -> None:
    ignore = -100 if name == "Perplexity" else -1
    metric = _make(name, average, ignore_index=ignore)
    preds, target = CLASSES[name][1](4)
    if how == "only empty batches":
        metric.update(*CLASSES[name][1](0))
    elif how == "every target ignored":
        metric.update(preds, torch.full_like(target, ignore))
    elif how == "after reset":
        metric.update(preds, target)
        metric.reset()
    value, messages = _recorded(metric.compute)
    _assert_no_data(value, messages, average)


# ---------------------------------------------------------------------------------- classes with no weight
def _multiclass_per_class(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean -log softmax of the true class, per true class (nan for a class never seen)."""
    nll = -log_softmax(logits, axis=1)[np.arange(len(target)), target]
    return np.array([nll[target == c].mean() if (target == c).any() else np.nan for c in range(K)])


def _multilabel_per_label(logits: np.ndarray, target: np.ndarray, ignore: int) -> np.ndarray:
    """Mean binary cross-entropy per label over its entries not equal to ``ignore``."""
    loss = -(np.where(target == 1, log_expit(logits), 0.0) + np.where(target == 0, log_expit(-logits), 0.0))
    kept = target != ignore
    return np.array([loss[kept[:, k], k].mean() if kept[:, k].any() else np.nan for k in range(K)])


def _entropy(rate: np.ndarray) -> np.ndarray:
    return -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))


@pytest.mark.parametrize("normalized", [False, True])
def test_multiclass_class_with_no_weight(normalized: bool) -> None:
    logits = torch.randn(6, K, dtype=torch.float64)
    target = torch.tensor([0, 2, 0, 2, 2, 0])  # class 1 never appears
    per_class = _multiclass_per_class(logits.numpy(), target.numpy())
    prior = np.array([0.5, 0.0, 0.5])
    scale = 1 / -np.sum(prior[prior > 0] * np.log(prior[prior > 0])) if normalized else 1.0
    make = MulticlassNormalizedEntropy if normalized else MulticlassCrossEntropy

    none = make(K, average="none")
    none.update(logits, target)
    value, messages = _recorded(none.compute)
    assert messages == []
    assert torch.isnan(value[1]) and not torch.isnan(value[[0, 2]]).any()
    np.testing.assert_allclose(value.numpy(), per_class * scale, rtol=1e-12)

    macro = make(K, average="macro")
    macro.update(logits, target)
    value, messages = _recorded(macro.compute)
    assert len(messages) == 1 and "average='macro' skipped 1 classes with no weight (indices [1])" in messages[0]
    np.testing.assert_allclose(value.item(), np.nanmean(per_class) * scale, rtol=1e-12)


@pytest.mark.parametrize("normalized", [False, True])
def test_multilabel_label_with_no_weight(normalized: bool) -> None:
    logits = torch.randn(4, K, dtype=torch.float64)
    target = torch.tensor([[1, -1, 0], [0, -1, 1], [1, -1, 1], [0, -1, 0]])  # label 1: every entry ignored
    per_label = _multilabel_per_label(logits.numpy(), target.numpy(), -1)
    scale = 1 / _entropy(np.array([0.5, 0.5, 0.5])) if normalized else np.ones(K)
    make = MultilabelNormalizedEntropy if normalized else MultilabelCrossEntropy

    none = make(K, average="none", ignore_index=-1)
    none.update(logits, target)
    value, messages = _recorded(none.compute)
    assert messages == []
    np.testing.assert_allclose(value.numpy(), per_label * scale, rtol=1e-12)
    assert torch.isnan(value[1]) and not torch.isnan(value[[0, 2]]).any()

    macro = make(K, average="macro", ignore_index=-1)
    macro.update(logits, target)
    value, messages = _recorded(macro.compute)
    assert len(messages) == 1
    assert "average='macro' skipped 1 labels with no weight (indices [1])" in messages[0]
    np.testing.assert_allclose(value.item(), np.nanmean(per_label * scale), rtol=1e-12)


# ------------------------------------------------------------------------- one-valued labels (zero entropy)
@pytest.mark.parametrize("value", [0, 1])
def test_binary_normalized_entropy_of_one_valued_labels_is_nan_with_one_warning(value: int) -> None:
    metric = BinaryNormalizedEntropy()
    metric.update(torch.randn(5), torch.full((5,), value))
    metric.update(torch.randn(3), torch.full((3,), value))
    result, messages = _recorded(metric.compute)
    assert math.isnan(result.item())
    assert len(messages) == 1 and ZERO_ENTROPY in messages[0] and "`nan` is returned" in messages[0]


@pytest.mark.parametrize("value", [0, 1])
def test_multilabel_normalized_entropy_of_a_one_valued_label(value: int) -> None:
    logits = torch.randn(4, K, dtype=torch.float64)
    target = torch.tensor([[1, value, 0], [0, value, 1], [1, value, 1], [0, value, 0]])
    per_label = _multilabel_per_label(logits.numpy(), target.numpy(), -1) / _entropy(np.array([0.5, 0.5, 0.5]))
    per_label[1] = np.nan

    none = MultilabelNormalizedEntropy(K, average="none")
    none.update(logits, target)
    result, messages = _recorded(none.compute)
    np.testing.assert_allclose(result.numpy(), per_label, rtol=1e-12)
    assert len(messages) == 1 and ZERO_ENTROPY in messages[0] and "`nan` is returned" in messages[0]

    macro = MultilabelNormalizedEntropy(K, average="macro")
    macro.update(logits, target)
    result, messages = _recorded(macro.compute)
    np.testing.assert_allclose(result.item(), np.nanmean(per_label), rtol=1e-12)
    assert len(messages) == 1 and ZERO_ENTROPY in messages[0] and "average='macro' skips it" in messages[0]

    micro = MultilabelNormalizedEntropy(K)  # the other labels still carry entropy: a finite micro value
    micro.update(logits, target)
    loss = _multilabel_per_label(logits.numpy(), target.numpy(), -1)
    np.testing.assert_allclose(micro.compute().item(), loss.sum() / (2 * _entropy(np.array(0.5))), rtol=1e-12)


@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_multilabel_normalized_entropy_with_every_label_one_valued(average: str) -> None:
    metric = MultilabelNormalizedEntropy(K, average=average)
    metric.update(torch.randn(4, K), torch.tensor([[1, 0, 1]] * 4))
    result, messages = _recorded(metric.compute)
    assert torch.isnan(result).all() and result.shape == ((K,) if average == "none" else ())
    assert len(messages) == 1 and ZERO_ENTROPY in messages[0]


@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_multiclass_normalized_entropy_of_a_single_class_prior(average: str) -> None:
    metric = MulticlassNormalizedEntropy(K, average=average)
    metric.update(torch.randn(5, K), torch.full((5,), 2))
    result, messages = _recorded(metric.compute)
    assert torch.isnan(result).all()
    zero_entropy = [m for m in messages if "zero entropy" in m]
    assert len(zero_entropy) == 1 and "class prior" in zero_entropy[0]


@pytest.mark.parametrize("value", [0, 1])
def test_label_smoothing_gives_one_valued_labels_a_finite_normalized_entropy(value: int) -> None:
    logits = torch.randn(6, dtype=torch.float64)
    metric = BinaryNormalizedEntropy(label_smoothing=0.1)
    metric.update(logits, torch.full((6,), value))
    y = value * 0.9 + 0.05  # the smoothed target, and so the base rate
    z = logits.numpy()
    loss = -(y * log_expit(z) + (1 - y) * log_expit(-z)).mean()
    np.testing.assert_allclose(metric.compute().item(), loss / _entropy(np.array(y)), rtol=1e-12)


@pytest.mark.parametrize("cls", [BinaryNormalizedEntropy, MultilabelNormalizedEntropy, MulticlassNormalizedEntropy])
def test_the_docstrings_document_the_zero_entropy_value(cls: type) -> None:
    doc = " ".join(cls.__doc__.split())
    if cls is MulticlassNormalizedEntropy:
        assert "A single-class prior has zero entropy: ``nan`` and a warning." in doc
    else:
        assert "All-positive or all-negative targets" in doc and "``nan``" in doc


@pytest.mark.parametrize("name", ["BinaryNormalizedEntropy", "MultilabelNormalizedEntropy"])
def test_normalized_entropy_of_a_small_total_weight_does_not_warn(name: str) -> None:
    """Weights summing to 0.3: the denominator sum_k W_k H(p_k) is below 1 but positive, a valid value."""
    import xent_metrics

    rng = np.random.default_rng(61)
    logits, target = rng.normal(size=(6, 2)), rng.integers(0, 2, size=(6, 2))
    target[:2] = [[0, 1], [1, 0]]  # both values in each label
    s = np.full(6, 0.05)
    binary = name.startswith("Binary")
    z, y = (logits[:, 0], target[:, 0]) if binary else (logits, target)
    metric = getattr(xent_metrics, name)(**({} if binary else {"num_labels": 2}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update(torch.tensor(z), torch.tensor(y), sample_weight=torch.tensor(s))
        got = float(metric.compute())
    w = s if binary else np.repeat(s[:, None], 2, 1)
    loss = -(y * log_expit(z) + (1 - y) * log_expit(-z))
    rate = (w * y).sum(0) / w.sum(0)
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log1p(-rate))
    assert got == pytest.approx((w * loss).sum() / (w.sum(0) * entropy).sum(), rel=1e-12)
