"""Regressions of the error-bar sweep (issue 23): expected values from numpy / float64 ``torch.nn.functional``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference

from xent_metrics import (
    BinaryCrossEntropy,
    MulticlassCrossEntropy,
    MultilabelCrossEntropy,
    PairedDifference,
    Perplexity,
)

Z95 = scipy.stats.norm.ppf(0.975)


def _check(out: dict, value: float, stderr: float, to_units=lambda v: v) -> None:
    assert float(out["value"]) == pytest.approx(to_units(value), rel=1e-12)
    assert float(out["stderr"]) == pytest.approx(stderr, rel=1e-9)
    assert float(out["low"]) == pytest.approx(to_units(value - Z95 * stderr), rel=1e-9)
    assert float(out["high"]) == pytest.approx(to_units(value + Z95 * stderr), rel=1e-9)


@pytest.mark.parametrize("error_bars", [False, True])
def test_paired_difference_of_one_position_per_row_binary_and_one_label(error_bars: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(9, dtype=torch.float64, generator=gen), torch.randn(9, dtype=torch.float64, generator=gen)
    target = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 1])
    weight = torch.tensor([0.3, 1.0, 0.0, 2.5, 0.7, 1.1, 0.3, 0.9, 1.6], dtype=torch.float64)
    nll = [F.binary_cross_entropy_with_logits(p, target.double(), reduction="none").numpy() for p in (a, b)]
    w = weight.numpy()
    value, stderr = clustered_reference(w, w * (nll[0] - nll[1]))
    binary = PairedDifference(BinaryCrossEntropy(error_bars=error_bars))
    binary.update(a[:4], b[:4], target[:4], weight[:4])
    binary.update(a[4:], b[4:], target[4:], weight[4:])
    _check(binary.compute_interval(), value, stderr)
    one_label = PairedDifference(MultilabelCrossEntropy(1, error_bars=error_bars))
    one_label.update(a[:, None], b[:, None], target[:, None], weight)
    _check(one_label.compute_interval(), value, stderr)


def test_paired_difference_in_bits_per_byte_of_a_global_byte_count() -> None:
    gen = torch.Generator().manual_seed(4)
    logits_a = torch.randn(6, 5, 7, dtype=torch.float64, generator=gen)
    logits_b = logits_a + 0.3 * torch.randn(6, 5, 7, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 7, (6, 5), generator=gen)
    target[2, 3:] = -100
    nll = [F.cross_entropy(lg.movedim(-1, 1), target, reduction="none", ignore_index=-100).numpy() for lg in
           (logits_a, logits_b)]
    x = (target != -100).double().numpy().sum(1)
    per_token, stderr = clustered_reference(x, nll[0].sum(1) - nll[1].sum(1))
    total_bytes = 131
    scale = x.sum() / total_bytes  # nats per token to nats per byte of the fixed count
    paired = PairedDifference(Perplexity(units="bits_per_byte", num_bytes=total_bytes, ignore_index=-100))
    paired.update(logits_a[:2], logits_b[:2], target[:2])
    paired.update(logits_a[2:], logits_b[2:], target[2:])
    to_bits = lambda v: v / math.log(2)  # noqa: E731
    _check(paired.compute_interval(), per_token * scale, stderr * scale, to_bits)
    own = (nll[0].sum() - nll[1].sum()) / total_bytes / math.log(2)  # the difference of the metrics' compute()
    assert float(paired.compute()) == pytest.approx(own, rel=1e-12)


def test_bits_per_byte_of_n_v_scores_take_one_byte_count_per_row() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(10, 6, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 6, (10,), generator=gen)
    num_bytes = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    nll = F.cross_entropy(logits, target, reduction="none").numpy()
    value, stderr = clustered_reference(num_bytes.double().numpy(), nll)
    metric = Perplexity(units="bits_per_byte", error_bars=True)
    metric.update(logits[:4], target[:4], num_bytes=num_bytes[:4])
    metric.update(logits[4:], target[4:], num_bytes=num_bytes[4:])
    _check(metric.compute_interval(), value, stderr, lambda v: v / math.log(2))
    plain = Perplexity(units="bits_per_byte")
    plain.update(logits, target, num_bytes=num_bytes)
    assert float(plain.compute()) == pytest.approx(nll.sum() / num_bytes.sum().item() / math.log(2), rel=1e-12)
    before = metric.sums.clone()
    with pytest.raises(ValueError, match=r"one count per sequence, an integer tensor of shape \(4,\) \(one per row "
                       r"of the target: .*a token of an \(N,\) one\); got int 14 for target of shape \(4,\)"):
        metric.update(logits[:4], target[:4], num_bytes=14)
    with pytest.raises(ValueError, match=r"shape \(\) or \(4,\), one count per sequence, i.e. per row of the target"):
        plain.update(logits[:4], target[:4], num_bytes=num_bytes)
    assert torch.equal(metric.sums, before)


def test_a_sequence_with_tokens_but_no_bytes_is_a_cluster() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(6, 3, 4, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 4, (6, 3), generator=gen)
    target[4] = -100  # no tokens and no bytes: no cluster
    num_bytes = torch.tensor([4, 0, 7, 3, 0, 9])
    y = F.cross_entropy(logits.movedim(-1, 1), target, reduction="none", ignore_index=-100).numpy().sum(1)
    x = num_bytes.double().numpy()
    ratio = y.sum() / x.sum()
    count = 5  # every sequence with tokens or bytes, the zero-byte one with tokens included
    stderr = math.sqrt(count / (count - 1) * ((y - ratio * x) ** 2).sum() / x.sum() ** 2)
    metric = Perplexity(units="bits_per_byte", error_bars=True, ignore_index=-100)
    metric.update(logits[:2], target[:2], num_bytes=num_bytes[:2])
    metric.update(logits[2:], target[2:], num_bytes=num_bytes[2:])
    _check(metric.compute_interval(), ratio, stderr, lambda v: v / math.log(2))


def test_bits_per_byte_of_weightless_tokens_is_nan_as_compute() -> None:
    metric = Perplexity(units="bits_per_byte", error_bars=True, ignore_index=-100)
    metric.update(torch.randn(2, 3, 4), torch.full((2, 3), -100), num_bytes=torch.tensor([5, 6]))
    weightless = torch.tensor([[0.0, 1.0]])  # a zero weight, then an ignored token
    metric.update(torch.randn(1, 2, 4), torch.tensor([[1, -100]]), weightless, num_bytes=torch.tensor([3]))
    out = metric.compute_interval()
    assert all(math.isnan(float(out[key])) for key in ("value", "stderr", "low", "high"))
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        assert math.isnan(float(metric.compute()))


def test_cluster_ids_must_be_integer_and_go_to_the_classes_that_take_them() -> None:
    logits, target = torch.randn(3, 2, 4), torch.randint(0, 4, (3, 2))
    metric = Perplexity(error_bars=True)
    with pytest.raises(TypeError, match=r"`cluster_ids` must be an integer tensor, .*got torch.bool"):
        metric.update(logits, target, cluster_ids=torch.tensor([True, False, True]))
    assert not metric.sums.any()
    binary = BinaryCrossEntropy(error_bars=True)
    with pytest.raises(TypeError, match=r"BinaryCrossEntropy.update\(\) got an unexpected keyword argument "
                       r"'cluster_ids': .*taken by MulticlassCrossEntropy and Perplexity with error_bars=True"):
        binary.update(torch.randn(3), torch.tensor([0, 1, 1]), cluster_ids=torch.tensor([0, 0, 1]))
    assert not binary.sums.any()
    with pytest.raises(TypeError, match=r"read only with error bars; construct Perplexity\(\.\.\., error_bars=True\)"):
        Perplexity()(logits, target, cluster_ids=torch.tensor([0, 0, 1]))


def _macro_reference(columns: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """The mean of independent columns' ratios and its standard error, each column's clusters ``(x, y)``."""
    parts = [clustered_reference(x, y) for x, y in columns]
    return float(np.mean([r for r, _ in parts])), math.sqrt(sum(se * se for _, se in parts)) / len(parts)


def test_macro_intervals_where_each_cluster_falls_in_one_column() -> None:
    gen = torch.Generator().manual_seed(7)
    preds, target = torch.randn(30, 3, dtype=torch.float64, generator=gen), torch.arange(30) % 3
    nll = F.cross_entropy(preds, target, label_smoothing=0.2, reduction="none").numpy()
    smoothed = MulticlassCrossEntropy(3, average="macro", label_smoothing=0.2, error_bars=True)
    smoothed.update(preds, target)
    _check(smoothed.compute_interval(), *_macro_reference([(np.ones(10), nll[target.numpy() == k]) for k in range(3)]))
    logits, labels = torch.randn(12, 2, dtype=torch.float64, generator=gen), torch.randint(0, 2, (12, 2), generator=gen)
    labels[:6, 1], labels[6:, 0] = -1, -1  # each row has weight in one label
    bce = F.binary_cross_entropy_with_logits(logits, labels.clamp_min(0).double(), reduction="none").numpy()
    one_label = MultilabelCrossEntropy(2, average="macro", ignore_index=-1, error_bars=True)
    one_label.update(logits, labels)
    _check(one_label.compute_interval(), *_macro_reference([(np.ones(6), bce[:6, 0]), (np.ones(6), bce[6:, 1])]))
    both = MultilabelCrossEntropy(2, average="macro", error_bars=True)
    both.update(logits, labels.clamp_min(0))
    with pytest.raises(ValueError, match=r"only where each cluster falls in one column .*label smoothing allowed"):
        both.compute_interval()
