"""Error bars with sample weights where the kernels take their buffered paths (float32 blocks, class indices).

The binary / multilabel kernel keeps a block's widened losses in a float64 buffer and hands them to the clusters
only when the losses are unweighted; the soft-target multiclass kernel splits each row's weight over its classes.
References: per-row losses from ``torch.nn.functional`` in float64, the clustered standard error from
``helpers.error_bars.clustered_reference`` (numpy).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference

from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy


def _close(out: dict, value: float, stderr: float) -> None:
    assert float(out["value"]) == pytest.approx(value, rel=2e-6)
    assert float(out["stderr"]) == pytest.approx(stderr, rel=2e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_and_multilabel_float32_with_sample_weights(weighted: bool) -> None:
    g = torch.Generator().manual_seed(41)
    n = 6000
    logits = torch.randn(n, 3, generator=g) * 1.7
    target = torch.randint(0, 2, (n, 3), generator=g)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 1.6 + 0.1 if weighted else torch.ones(n, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="none")
    micro = MultilabelCrossEntropy(3, error_bars=True)
    for rows in (slice(0, 2500), slice(2500, n)):
        micro.update(logits[rows], target[rows], sample_weight=s[rows].float() if weighted else None)
    x, y = (3 * s).numpy(), (s * bce.sum(1)).numpy()
    _close(micro.compute_interval(), *clustered_reference(x, y))
    binary = BinaryCrossEntropy(error_bars=True)
    binary.update(logits[:, 1], target[:, 1], sample_weight=s.float() if weighted else None)
    _close(binary.compute_interval(), *clustered_reference(s.numpy(), (s * bce[:, 1]).numpy()))


def test_soft_targets_with_sample_weights_and_class_weight() -> None:
    g = torch.Generator().manual_seed(42)
    n, c = 400, 5
    preds = torch.randn(n, c, generator=g, dtype=torch.float64) * 1.3
    soft = torch.rand(n, c, generator=g, dtype=torch.float64).softmax(1)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 1.6 + 0.1
    for class_weight in (None, torch.tensor([0.3, 1.0, 2.0, 0.7, 1.3], dtype=torch.float64)):
        metric = MulticlassCrossEntropy(c, weight=class_weight, error_bars=True)
        metric.update(preds[:150], soft[:150], sample_weight=s[:150])
        metric.update(preds[150:], soft[150:], sample_weight=s[150:])
        nll = F.cross_entropy(preds, soft, weight=class_weight, reduction="none")  # torch: mean over sum(s)
        _close(metric.compute_interval(), *clustered_reference(s.numpy(), (s * nll).numpy()))
