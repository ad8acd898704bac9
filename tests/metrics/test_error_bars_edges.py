"""Error bars at their edges: a class without data in a macro mean, exactly two clusters, clusters whose loss is
exactly 0, and per-label clusters of two labels over sequences.

References: losses from ``torch.nn.functional`` in float64, the clustered standard error from
``helpers.error_bars.clustered_reference`` (numpy), the macro mean of independent columns written out here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity


def _close(out: dict, value: float, stderr: float) -> None:
    assert float(out["value"]) == pytest.approx(value, rel=1e-12)
    assert float(out["stderr"]) == pytest.approx(stderr, rel=1e-9)


def test_macro_interval_leaves_out_a_class_without_data() -> None:
    g = torch.Generator().manual_seed(71)
    preds = torch.randn(80, 4, generator=g, dtype=torch.float64) * 1.3
    target = torch.randint(0, 3, (80,), generator=g)
    target[target == 2] = 3  # class 2 never occurs
    nll, t = F.cross_entropy(preds, target, reduction="none").numpy(), target.numpy()
    per_class = [clustered_reference(np.ones((t == k).sum()), nll[t == k]) for k in (0, 1, 3)]
    metric = MulticlassCrossEntropy(4, average="macro", error_bars=True)
    metric.update(preds, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # average='macro' skipped 1 classes with no weight
        out = metric.compute_interval()
    _close(out, float(np.mean([v for v, _ in per_class])), math.sqrt(sum(s * s for _, s in per_class)) / 3)


def test_two_clusters_have_a_finite_standard_error() -> None:
    g = torch.Generator().manual_seed(72)
    logits, target = torch.randn(2, 7, 6, generator=g, dtype=torch.float64), torch.randint(0, 6, (2, 7), generator=g)
    nll = F.cross_entropy(logits.movedim(-1, 1), target, reduction="none").numpy()
    metric = Perplexity(units="bits_per_token", error_bars=True)
    metric.update(logits, target)
    value, stderr = clustered_reference(np.full(2, 7.0), nll.sum(1))
    out = metric.compute_interval()
    assert math.isfinite(float(out["stderr"]))
    assert float(out["stderr"]) == pytest.approx(stderr, rel=1e-9)  # on the loss scale (nats), as documented
    assert float(out["value"]) == pytest.approx(value / math.log(2), rel=1e-12)


def test_rows_whose_loss_is_exactly_zero_are_clusters_too() -> None:
    g = torch.Generator().manual_seed(73)
    log_p = torch.log_softmax(torch.randn(30, 3, generator=g, dtype=torch.float64), 1)
    target = torch.randint(0, 3, (30,), generator=g)
    certain = torch.tensor([0, 1, 2, 3, 4, 5])
    target[certain] = 0
    log_p[certain] = torch.tensor([0.0, -math.inf, -math.inf], dtype=torch.float64)  # -log p = 0 exactly
    nll, t = F.nll_loss(log_p, target, reduction="none").numpy(), target.numpy()
    metric = MulticlassCrossEntropy(3, average="none", input_format="log_probs", error_bars=True)
    metric.update(log_p, target)
    out = metric.compute_interval()
    for k in range(3):
        _close({key: v[k] for key, v in out.items()}, *clustered_reference(np.ones((t == k).sum()), nll[t == k]))


def test_two_labels_per_label_over_sequences() -> None:
    g = torch.Generator().manual_seed(74)
    logits = torch.randn(9, 2, 5, generator=g, dtype=torch.float64) * 1.4  # (B, K, L): the sequences are clusters
    target = torch.randint(0, 2, (9, 2, 5), generator=g)
    bce = F.binary_cross_entropy_with_logits(logits, target.double(), reduction="none").numpy()
    metric = MultilabelCrossEntropy(2, average="none", error_bars=True)
    metric.update(logits[:4], target[:4])
    metric.update(logits[4:], target[4:])
    out = metric.compute_interval()
    for k in range(2):
        _close({key: v[k] for key, v in out.items()}, *clustered_reference(np.full(9, 5.0), bce[:, k].sum(1)))
