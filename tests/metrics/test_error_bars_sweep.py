"""Regressions of the error-bar sweep (issue 23): expected values from numpy / float64 ``torch.nn.functional``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference

from xent_metrics import BinaryCrossEntropy, MultilabelCrossEntropy, PairedDifference

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
