"""Each row of the ``(3, K)`` sums holds one quantity, whatever produced it.

``TARGET`` is the weighted target mass ``sum_i w_i y_ik`` (sample weight, 0 where ``ignore_index``
drops the target, class weights left out; ``y`` after label smoothing), ``WEIGHT`` the weight behind
the mean. The expected values are numpy sums over the inputs, never the package's own helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xent_metrics.functional._sums import LOSS, TARGET, WEIGHT
from xent_metrics.metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy
from xent_metrics.scoring._label_sums import class_label_sums, indicator_sums, per_output_sums

N, C = 40, 4
RTOL = 1e-12


def _close(got: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL, atol=1e-15)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(13)
    logits = torch.randn(N, C, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, C, (N,), generator=gen)
    weight = torch.rand(N, generator=gen, dtype=torch.float64) * 0.3 + 0.1
    return logits, target, weight


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_hard_target_mass(batch, smoothing: float, weighted: bool) -> None:
    logits, target, weight = batch
    target = target.clone()
    target[::5] = -100  # ignored rows carry no target mass
    metric = MulticlassCrossEntropy(C, average="none", ignore_index=-100, label_smoothing=smoothing)
    metric.update(logits, target, sample_weight=weight if weighted else None)
    w = weight.numpy() if weighted else np.ones(N)
    keep = target.numpy() != -100
    onehot = np.eye(C)[np.where(keep, target.numpy(), 0)] * keep[:, None]
    smoothed = onehot * (1 - smoothing) + keep[:, None] * smoothing / C
    _close(metric.sums[TARGET], (w[:, None] * smoothed).sum(0))
    _close(metric.sums[WEIGHT], (w[:, None] * onehot).sum(0))


def test_multiclass_class_weight_is_not_target_mass(batch) -> None:
    logits, target, weight = batch
    class_weight = torch.tensor([0.3, 1.7, 0.9, 2.2], dtype=torch.float64)
    metric = MulticlassCrossEntropy(C, average="none", weight=class_weight)
    metric.update(logits, target, sample_weight=weight)
    onehot = np.eye(C)[target.numpy()]
    _close(metric.sums[TARGET], (weight.numpy()[:, None] * onehot).sum(0))
    _close(metric.sums[WEIGHT], (weight.numpy()[:, None] * onehot).sum(0) * class_weight.numpy())


@pytest.mark.parametrize("rows", [6, 3000])  # the per-step path and the block path count classes
def test_multiclass_plain_batch_counts(rows: int) -> None:
    gen = torch.Generator().manual_seed(rows)
    logits, target = torch.randn(rows, C, generator=gen), torch.randint(0, C, (rows,), generator=gen)
    metric = MulticlassCrossEntropy(C, average="none")
    metric.update(logits, target)
    counts = np.bincount(target.numpy(), minlength=C).astype(np.float64)
    _close(metric.sums[TARGET], counts)
    _close(metric.sums[WEIGHT], counts)


def test_multiclass_soft_target_mass(batch) -> None:
    logits, _, weight = batch
    soft = torch.rand(N, C, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # unnormalised rows
    metric = MulticlassCrossEntropy(C, average="none", label_smoothing=0.2)
    metric.update(logits, soft, sample_weight=weight)
    smoothed = soft.numpy() * 0.8 + 0.2 / C
    _close(metric.sums[TARGET], (weight.numpy()[:, None] * smoothed).sum(0))
    np.testing.assert_allclose(float(metric.sums[WEIGHT].sum()), weight.numpy().sum(), rtol=RTOL)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_multilabel_and_binary_positive_mass(batch, smoothing: float) -> None:
    logits, _, weight = batch
    labels = (torch.rand(N, C, generator=torch.Generator().manual_seed(5)) > 0.6).long()
    labels[1::7, 2] = -1  # ignored entries
    metric = MultilabelCrossEntropy(C, average="none", ignore_index=-1, label_smoothing=smoothing)
    metric.update(logits, labels, sample_weight=weight)
    keep = labels.numpy() != -1
    y = np.where(keep, labels.numpy(), 0) * (1 - smoothing) + smoothing / 2
    w = weight.numpy()[:, None]
    _close(metric.sums[TARGET], (w * y * keep).sum(0))
    _close(metric.sums[WEIGHT], (w * keep).sum(0))
    binary = BinaryCrossEntropy()
    binary.update(logits[:, 0], labels[:, 0].clamp(min=0), sample_weight=weight)
    _close(binary.sums[TARGET], [(weight.numpy() * labels[:, 0].clamp(min=0).numpy()).sum()])


@pytest.mark.parametrize("input_format", ["logits", "log_probs", "probs"])
def test_positive_class_scores_give_class_sums(input_format: str) -> None:
    """``(n,)`` scores of a binary problem: per true class, its loss, its weight and its target mass."""
    gen = torch.Generator().manual_seed(7)
    margin = torch.randn(30, generator=gen, dtype=torch.float64) * 2
    target, weight = torch.randint(0, 2, (30,), generator=gen), torch.rand(30, generator=gen, dtype=torch.float64)
    scores = {"logits": margin, "log_probs": F.logsigmoid(margin), "probs": torch.sigmoid(margin)}[input_format]
    sums = class_label_sums(scores, target, input_format, weight)
    nll = F.binary_cross_entropy_with_logits(margin, target.double(), reduction="none").numpy()
    w, onehot = weight.numpy(), np.eye(2)[target.numpy()]
    np.testing.assert_allclose(sums[LOSS].numpy(), (w * nll) @ onehot, rtol=1e-9)
    _close(sums[WEIGHT], w @ onehot)
    _close(sums[TARGET], w @ onehot)


def test_per_output_and_indicator_sums_agree_on_positive_mass() -> None:
    """One ``(n, 2)`` array per label, or ``(n, K)`` positive scores: the same per-label rows."""
    gen = torch.Generator().manual_seed(11)
    p = torch.rand(25, 3, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    target, weight = (torch.rand(25, 3, generator=gen) > 0.5).to(torch.int8), torch.rand(25, generator=gen).double()
    outputs = [torch.stack([1 - p[:, k], p[:, k]], 1) for k in range(3)]
    listed = per_output_sums(outputs, target, "probs", weight)
    matrix = indicator_sums(p, target, "probs", weight)
    y, w = target.numpy().astype(np.float64), weight.numpy()[:, None]
    bce = F.binary_cross_entropy(p, target.double(), reduction="none").numpy()
    for sums in (listed, matrix):
        np.testing.assert_allclose(sums[LOSS].numpy(), (w * bce).sum(0), rtol=1e-9)
        _close(sums[WEIGHT], np.repeat(w.sum(), 3))
        _close(sums[TARGET], (w * y).sum(0))
