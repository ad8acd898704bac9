"""Edges of the core the mutation run found unwatched: hidden states that cannot be viewed as (N, d), probabilities
with exact zeros, an empty batch with cluster ids, and the Metric attributes torchmetrics and Lightning read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss

import xent_metrics
from xent_metrics.functional import linear_cross_entropy, multiclass_cross_entropy
from xent_metrics.metrics._base import SumsMetric


@pytest.mark.parametrize("ignore_index", [None, -100])
@pytest.mark.parametrize("block_size", [2, 4, 15])
def test_hidden_states_that_cannot_be_viewed_flat(block_size: int, ignore_index: int | None) -> None:
    g = torch.Generator().manual_seed(81)
    hidden = torch.randn(5, 3, 8, generator=g, dtype=torch.float64).transpose(0, 1)  # (3, 5, 8), not viewable
    head = torch.randn(11, 8, generator=g, dtype=torch.float64)
    target = torch.randint(0, 11, (3, 5), generator=g)
    if ignore_index is not None:
        target[1, 2] = ignore_index
    with pytest.raises(RuntimeError):
        hidden.view(-1, 8)
    want = F.cross_entropy(hidden.reshape(-1, 8) @ head.T, target.reshape(-1), ignore_index=-100)
    got = linear_cross_entropy(hidden, head, target, ignore_index=ignore_index, block_size=block_size)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_probabilities_with_exact_zeros_off_the_true_class_are_valid() -> None:
    y = np.array([0, 1, 2, 1])
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.1, 0.3, 0.6], [0.0, 1.0, 0.0]])
    got = multiclass_cross_entropy(torch.tensor(p), torch.tensor(y), input_format="probs")
    assert float(got) == pytest.approx(log_loss(y, p), rel=1e-12)


def test_an_empty_batch_with_cluster_ids_adds_nothing() -> None:
    metric = xent_metrics.Perplexity(error_bars=True)
    logits, target = torch.randn(3, 4, 6, dtype=torch.float64), torch.randint(0, 6, (3, 4))
    metric.update(logits, target, cluster_ids=torch.tensor([0, 0, 1]))
    before = metric.sums.clone()
    empty = torch.zeros(0, dtype=torch.long)
    metric.update(torch.randn(0, 4, 6), torch.zeros(0, 4, dtype=torch.long), cluster_ids=empty)
    assert torch.equal(metric.sums, before)


@pytest.mark.parametrize("name", xent_metrics.__all__)
def test_metric_attributes_torchmetrics_and_lightning_read(name: str) -> None:
    cls = getattr(xent_metrics, name)
    if not (isinstance(cls, type) and issubclass(cls, SumsMetric)):
        pytest.skip("not a cross-entropy Metric")
    assert cls.is_differentiable is True and cls.higher_is_better is False and cls.full_state_update is False
