"""Integer targets of every width give the int64 target's value, on both kernel paths (``conftest.py``).

The kernels gather with int64 indices: a narrower class index (int32 from a tokenizer, uint8, int16) must be
widened, not refused and not read as something else. References: ``torch.nn.functional`` in float64 on the
int64 copy of the targets.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from oracle_cases import rng_for

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity
from xent_metrics.functional import (
    binary_cross_entropy,
    linear_cross_entropy,
    multiclass_cross_entropy,
    multilabel_cross_entropy,
)

NARROW = [torch.int32, torch.int16, torch.uint8]


@pytest.mark.parametrize("dtype", NARROW)
def test_multiclass_narrow_class_indices(dtype: torch.dtype) -> None:
    rng = rng_for(90)
    N, C = 37, 6
    z = torch.tensor(rng.normal(scale=1.7, size=(N, C)))
    y = torch.tensor(rng.integers(0, C, size=N))
    y[[3, 11]] = 5
    w = torch.tensor(rng.uniform(0.3, 2.1, size=C))
    s = torch.tensor(rng.uniform(0.1, 1.9, size=N))
    for ls in (0.0, 0.3):
        want = (F.cross_entropy(z, y, weight=w, label_smoothing=ls, reduction="none") * s).sum() / (w[y] * s).sum()
        got = multiclass_cross_entropy(z.float(), y.to(dtype), weight=w.float(), sample_weight=s.float(),
                                       label_smoothing=ls)
        torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=0)
        probs = torch.softmax(z, 1)
        want_p = F.nll_loss(probs.clamp_min(torch.finfo(torch.float32).eps).log(), y)
        got_p = multiclass_cross_entropy(probs.float(), y.to(dtype), input_format="probs")
        torch.testing.assert_close(got_p.double(), want_p, rtol=2e-6, atol=0)
    per_class = multiclass_cross_entropy(z.float(), y.to(dtype), average=None)
    want_pc = torch.stack([F.cross_entropy(z[y == c], y[y == c]) for c in range(C)])
    torch.testing.assert_close(per_class.double(), want_pc, rtol=2e-6, atol=0)


def test_multiclass_int32_ignore_index_and_metric_batches() -> None:
    rng = rng_for(91)
    N, C = 40, 7
    z = torch.tensor(rng.normal(scale=2.3, size=(N, C)))
    y = torch.tensor(rng.integers(0, C, size=N))
    y[[0, 9, 30]] = -1
    want = F.cross_entropy(z, y, ignore_index=-1)
    got = multiclass_cross_entropy(z.float(), y.int(), ignore_index=-1)
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=0)
    metric = MulticlassCrossEntropy(num_classes=C, ignore_index=-1)
    for rows in (slice(0, 13), slice(13, 14), slice(14, N)):
        metric.update(z[rows].float(), y[rows].int())
    torch.testing.assert_close(metric.compute().double(), want, rtol=2e-6, atol=0)
    ppl = Perplexity(ignore_index=-100)
    ppl.update(z.float().unsqueeze(0), torch.where(y < 0, -100, y).to(torch.int32).unsqueeze(0))
    torch.testing.assert_close(ppl.compute().double(), F.cross_entropy(z, y, ignore_index=-1).exp(), rtol=2e-6, atol=0)


@pytest.mark.parametrize("dtype", NARROW)
def test_multiclass_narrow_class_indices_over_positions(dtype: torch.dtype) -> None:
    """``(N, C, L)`` scores: the unit-weight class counts take the narrow targets too (``index_add_`` off the CPU)."""
    rng = rng_for(94)
    z = torch.tensor(rng.normal(scale=1.4, size=(9, 5, 4)))
    y = torch.tensor(rng.integers(0, 5, size=(9, 4)))
    for average in ("micro", "none"):
        got = multiclass_cross_entropy(z.float(), y.to(dtype), average=average)
        want = F.cross_entropy(z, y) if average == "micro" else torch.stack(
            [F.cross_entropy(z.movedim(1, -1)[y == c], y[y == c]) for c in range(5)]
        )
        torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=0)
    ppl = Perplexity()
    ppl.update(z.float().movedim(1, -1), y.to(dtype))
    torch.testing.assert_close(ppl.compute().double(), F.cross_entropy(z, y).exp(), rtol=2e-6, atol=0)


@pytest.mark.parametrize("dtype", [*NARROW, torch.bool])
def test_binary_and_multilabel_integer_targets(dtype: torch.dtype) -> None:
    rng = rng_for(92)
    z = torch.tensor(rng.normal(scale=1.9, size=(23, 4)))
    y = torch.tensor(rng.integers(0, 2, size=(23, 4)))
    pw = torch.tensor(rng.uniform(0.4, 2.2, size=4))
    want = F.binary_cross_entropy_with_logits(z, y.double(), pos_weight=pw)
    got = multilabel_cross_entropy(z.float(), y.to(dtype), pos_weight=pw.float())
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=0)
    got_b = binary_cross_entropy(z[:, 0].float(), y[:, 0].to(dtype))
    want_b = F.binary_cross_entropy_with_logits(z[:, 0], y[:, 0].double())
    torch.testing.assert_close(got_b.double(), want_b, rtol=2e-6, atol=0)
    metric = MultilabelCrossEntropy(num_labels=4, average=None)
    metric.update(z[:10].float(), y[:10].to(dtype))
    metric.update(z[10:].float(), y[10:].to(dtype))
    want_pl = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none").mean(0)
    torch.testing.assert_close(metric.compute().double(), want_pl, rtol=2e-6, atol=0)


@pytest.mark.parametrize("dtype", NARROW)
def test_hidden_states_narrow_targets(dtype: torch.dtype) -> None:
    rng = rng_for(93)
    V, ignore = (200, 255) if dtype == torch.uint8 else (300, -100)  # an ignore_index the dtype holds
    h = torch.tensor(rng.normal(size=(19, 8)))
    W = torch.tensor(rng.normal(scale=0.7, size=(V, 8)))
    y = torch.tensor(rng.integers(0, V, size=19))
    y[4] = ignore
    want = F.cross_entropy(h @ W.T, y, ignore_index=ignore, label_smoothing=0.3)
    got = linear_cross_entropy(h.float(), W.float(), y.to(dtype), ignore_index=ignore, label_smoothing=0.3)
    torch.testing.assert_close(got.double(), want, rtol=2e-5, atol=0)
    metric = MulticlassCrossEntropy(num_classes=V, ignore_index=ignore)
    metric.update(h[:7].float(), y[:7].to(dtype), linear_weight=W.float())
    metric.update(h[7:].float(), y[7:].to(dtype), linear_weight=W.float())
    torch.testing.assert_close(metric.compute().double(), F.cross_entropy(h @ W.T, y, ignore_index=ignore),
                               rtol=2e-5, atol=0)
