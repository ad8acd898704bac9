"""Long runs: 10^8 samples over 10^5 updates against an exact reference, and the adversarial case.

The per-sample losses are known exactly, so the only error measured is the metric's accumulation:
``MulticlassCrossEntropy(input_format="log_probs")`` turns a sample's loss into
``-preds[i, target_i]``, a gather and a negation, both exact. Each log-probability is
``-k * 2**-E`` with ``k`` a uniform 53-bit integer (a float64 with a full mantissa), so the exact
sum of the losses of each class is ``(sum of k) * 2**-E``, computed in integers (checked against
``math.fsum`` on the first million samples).

The bound (naive float64 accumulation of the ``(3, K)`` state, as the metrics do): every update
rounds once, by at most ``u = 2**-53`` relative of the running total, and torch's float64 sum
of a batch's ``n`` per-class values by at most ``(n - 1) u``; all the sums are of non-negative
terms, so after ``U`` updates the relative error is at most ``(U + n - 1) u`` (1.1e-11 for
``U = 10**5``, ``n = 1000``), and ``compute()`` adds about ``K u``. When the roundings are
independent the error grows like ``sqrt(U) u``: measured 1e-14 here. The worst case is reached
when small increments land on a large total and every rounding goes the same way; the adversarial
case builds it and measures about ``U u / 2``, above 1e-12 (see its strict ``xfail``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from xent_metrics import MulticlassCrossEntropy

U_STEP = 2.0**-53  # the unit roundoff of float64
UPDATES, SAMPLES, CLASSES = 100_000, 1_000, 3  # 10**8 samples
CHUNK = 1_000  # updates generated at once


def _exact_per_class(k: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[int]:
    """Per-class sums of the 53-bit integers ``k``, exactly (two 27-bit halves in int64, then Python ints)."""
    high = torch.zeros(num_classes, dtype=torch.int64).index_add_(0, target, k >> 26)
    low = torch.zeros(num_classes, dtype=torch.int64).index_add_(0, target, k & (2**26 - 1))
    return [(int(h) << 26) + int(lo) for h, lo in zip(high, low, strict=True)]


def _accumulate(
    metric: MulticlassCrossEntropy, updates: int, exponent: int, g: torch.Generator, adversarial: bool
) -> list[int]:
    """Feed ``updates`` batches of ``SAMPLES`` exact losses ``k * 2**-exponent``; return the exact integer sums."""
    exact = [0] * metric.num_classes
    for chunk in range(updates // CHUNK):
        k = torch.randint(0, 2**53, (CHUNK * SAMPLES,), generator=g, dtype=torch.int64)
        if adversarial:  # every sample in class 0, where the large total is
            target = torch.zeros(CHUNK * SAMPLES, dtype=torch.int64)
        else:
            target = torch.randint(0, metric.num_classes, (CHUNK * SAMPLES,), generator=g)
        log_p = k.double().mul_(-(2.0**-exponent))  # exact: a 53-bit integer times a power of two
        exact = [a + b for a, b in zip(exact, _exact_per_class(k, target, metric.num_classes), strict=True)]
        if chunk == 0:  # the integer construction against math.fsum on the first million losses
            assert math.fsum((-log_p).tolist()) == float(Fraction(sum(exact), 2**exponent))
        preds = log_p.view(CHUNK, SAMPLES, 1).expand(CHUNK, SAMPLES, metric.num_classes)  # every column: the loss
        batches = target.view(CHUNK, SAMPLES)
        for i in range(CHUNK):
            metric.update(preds[i], batches[i])
    return exact


def _relative(value: float, exact: Fraction) -> float:
    return float(abs(Fraction(value) - exact) / exact)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_1e8_samples_over_1e5_updates_stay_within_1e_12_of_the_exact_sum() -> None:
    exponent = 50  # losses in [0, 8): k * 2**-50 with k < 2**53
    # average="none": the per-class (3, C) layout (a micro metric keeps only the (3, 1) totals)
    metric = MulticlassCrossEntropy(CLASSES, input_format="log_probs", validate_args=False, average="none")
    exact = _accumulate(metric, UPDATES, exponent, torch.Generator().manual_seed(1), adversarial=False)

    per_class = [Fraction(e, 2**exponent) for e in exact]
    errors = [_relative(float(metric.sums[0, c]), per_class[c]) for c in range(CLASSES)]
    mean = sum(per_class) / (UPDATES * SAMPLES)
    error_ce = _relative(metric.sums[0].sum().item() / (UPDATES * SAMPLES), mean)
    print(f"long run: relative error per class {[f'{e:.2e}' for e in errors]}, of the cross-entropy {error_ce:.2e}")
    assert metric.sums[1].sum().item() == UPDATES * SAMPLES  # counts are exact integers in float64
    assert max(errors) <= 1e-12 and error_ce <= 1e-12
    assert max(errors) <= (UPDATES + SAMPLES) * U_STEP  # the documented worst case


ADVERSARIAL_UPDATES = 20_000
LARGE = 2.0**40  # one sample's loss: ulp(LARGE) = 2**-12
TINY_EXPONENT = 75  # losses below 2**-22: a batch adds about 0.49 ulp(LARGE), rounded away each time


@pytest.fixture(scope="module")
def adversarial_error() -> float:
    """Small increments onto a large total: the relative error of the accumulated loss of class 0."""
    metric = MulticlassCrossEntropy(2, input_format="log_probs", validate_args=False, average="none")
    metric.update(torch.full((1, 2), -LARGE, dtype=torch.float64), torch.tensor([0]))
    exact = _accumulate(metric, ADVERSARIAL_UPDATES, TINY_EXPONENT, torch.Generator().manual_seed(2), adversarial=True)
    total = Fraction(LARGE) + Fraction(exact[0], 2**TINY_EXPONENT)
    error = _relative(float(metric.sums[0, 0]), total)
    print(f"adversarial: {ADVERSARIAL_UPDATES} small increments onto 2**40, relative error {error:.2e}")
    return error


@pytest.mark.slow
def test_small_increments_onto_a_large_total_stay_within_the_naive_bound(adversarial_error: float) -> None:
    assert adversarial_error <= (ADVERSARIAL_UPDATES + 1 + SAMPLES) * U_STEP


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="naive float64 accumulation: U small increments onto a large total lose up to U u (about 2e-12 here); "
    "compensated accumulation of the state is designed but not adopted (per-update cost)",
)
def test_small_increments_onto_a_large_total_stay_within_1e_12(adversarial_error: float) -> None:
    assert adversarial_error <= 1e-12
