"""Seams the task-object refactor (issue 21) had to keep, found by a differential sweep against the code before it.

- ``update``'s signature lists its keywords (no ``**kwargs``): torchmetrics' ``MetricCollection`` routes a
  keyword only to the members whose ``update`` names it, so ``num_bytes`` reaches ``Perplexity`` alone.
- A binary metric with a tensor ``pos_weight`` moved to ``meta`` takes a ``meta`` batch (``validate_args=False``).
- Per-sequence weights of hidden states are checked as given: the messages count sequences, not tokens.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, Perplexity
from xent_metrics.functional import linear_cross_entropy


def test_a_collection_routes_num_bytes_to_perplexity_alone() -> None:
    gen = torch.Generator().manual_seed(11)
    logits, target = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randint(0, 3, (5,), generator=gen)
    collection = MetricCollection({"ce": MulticlassCrossEntropy(3), "bpb": Perplexity(units="bits_per_byte")})
    out = collection(logits, target, num_bytes=7)
    ce = F.cross_entropy(logits, target)
    torch.testing.assert_close(out["ce"], ce, rtol=1e-14, atol=0)
    torch.testing.assert_close(out["bpb"], ce * 5 / (math.log(2) * 7), rtol=1e-14, atol=0)
    for metric in (MulticlassCrossEntropy(3), Perplexity()):
        with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
            metric.update(logits, target, bogus=1)
        assert float(metric.sums.abs().sum()) == 0.0


def test_a_binary_metric_with_a_tensor_pos_weight_takes_a_meta_batch() -> None:
    metric = BinaryCrossEntropy(pos_weight=torch.tensor([2.0]), validate_args=False).to("meta")
    metric.update(torch.zeros(4, device="meta"), torch.zeros(4, dtype=torch.long, device="meta"))
    assert metric.sums.device.type == "meta" and metric.sums.shape == (3, 1)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (torch.zeros(2), r"zero everywhere \(2 values\)"),
        (torch.tensor([math.nan, 1.0]), r"NaN or inf \(1 of 2 values\)"),
        (torch.tensor([-0.5, 1.0]), r"non-negative, got a minimum of -0.5"),
    ],
)
def test_per_sequence_weights_of_hidden_states_are_checked_as_given(weights: torch.Tensor, match: str) -> None:
    hidden, head = torch.zeros(2, 3, 4), torch.zeros(5, 4)
    target = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        linear_cross_entropy(hidden, head, target, sample_weight=weights)
    metric = Perplexity()
    with pytest.raises(ValueError, match=match):
        metric.update(hidden, target, weights, linear_weight=head)
    assert float(metric.sums.abs().sum()) == 0.0
