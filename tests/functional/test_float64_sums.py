"""Float32 inputs are summed in float64, never in float32 first: results carry no float32 partial-sum rounding.

Float32 values widened to float64 add with float64's rounding, so the sums of a batch agree to about 1e-15 for any
split into updates. A float32 partial sum would lose a small soft target next to a 1.0 (a block's target mass off
by 1e-6 relative) and move the 7th digit with the split. The
references are ``math.fsum`` of the float32 values and ``torch.nn.functional`` in float64.
"""

from __future__ import annotations

import math

import torch

from xent_metrics import MultilabelNormalizedEntropy
from xent_metrics.functional import binary_cross_entropy, multilabel_normalized_entropy

ROWS, LABELS = 40000, 3  # more than one block of the binary kernel (2**18 elements)


def _soft_targets() -> torch.Tensor:
    """Float32 soft targets of 3e-8 with a 1.0 every 997 rows: a float32 running sum drops the small ones."""
    y = torch.full((ROWS, LABELS), 3e-8, dtype=torch.float32)
    y[::997] = 1.0
    y[:, 1] *= 0.3
    return y


def _reference_ne(preds: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-label NE from float64 torch losses and exact (``math.fsum``) base rates."""
    losses = torch.nn.functional.binary_cross_entropy_with_logits(preds.double(), y.double(), reduction="none")
    values = []
    for k in range(LABELS):
        rate = math.fsum(y[:, k].double().tolist()) / ROWS
        entropy = -(rate * math.log(rate) + (1 - rate) * math.log1p(-rate))
        values.append(math.fsum(losses[:, k].tolist()) / ROWS / entropy)
    return torch.tensor(values, dtype=torch.float64)


def test_soft_float32_targets_are_summed_in_float64_whatever_the_split() -> None:
    gen = torch.Generator().manual_seed(7)
    preds = (torch.randn(ROWS, LABELS, generator=gen) * 3).float()
    y = _soft_targets()
    whole = multilabel_normalized_entropy(preds, y, average="none")
    torch.testing.assert_close(whole, _reference_ne(preds, y), rtol=2e-6, atol=0)
    metric = MultilabelNormalizedEntropy(num_labels=LABELS, average="none")
    for rows in (slice(0, 123), slice(123, 30001), slice(30001, ROWS)):
        metric.update(preds[rows], y[rows])
    torch.testing.assert_close(metric.compute(), whole, rtol=1e-13, atol=0)  # float64 association only


def test_a_float_pos_weight_beyond_float32_is_checked_and_used_in_float64() -> None:
    """``pos_weight=1e39`` is finite (float64), so accepted; rounded to float32 first it would read as ``inf``."""
    preds, target = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([1, 0, 1])
    got = binary_cross_entropy(preds, target, pos_weight=1e39)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        preds.double(), target.double(), pos_weight=torch.tensor(1e39, dtype=torch.float64)
    )
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
