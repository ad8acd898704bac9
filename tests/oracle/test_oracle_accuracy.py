"""The accuracy contract of issue 12 on every row, confident rows included, against exact references.

float64 inputs: 1e-12 relative per row for true-class margins up to 600 nats (loss ~1e-260), the reference
computed with mpmath from the exact float64 values. float32 inputs: 2e-6 relative per row and per batch for
margins up to 80 nats, the reference log1p(sum_{j != t} exp(z_j - z_t)) in float64 on the float32 values upcast
(their differences are exact). Never negative; Perplexity never below 1.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oracle_cases import rng_for
from oracle_refs import (
    CASES,
    SCALE,
    check,
    confident_rows,
    dname,
    exact_row_mp,
    exact_rows_f64,
    record,
    rel_err,
    report,
)

from xent_metrics import Perplexity
from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy

CLASSES = [2, 5, 15, 16, 100, 127, 128, 300, 1000]
MARGINS_F64 = [-30.3, 0.3, 5.3, 20.7, 30.3, 45.1, 79.7, 150.3, 300.7, 599.7]
MARGINS_F32 = [-30.3, 0.3, 5.3, 15.1, 20.7, 30.3, 45.1, 60.9, 79.7]


def _per_row(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Our loss of each row on its own (a batch of one row), as a float64 vector."""
    return torch.stack([multiclass_cross_entropy(z[i : i + 1], t[i : i + 1]) for i in range(z.shape[0])])


@pytest.mark.parametrize("C", CLASSES)
def test_float64_every_row_within_1e12_of_mpmath(C: int) -> None:
    """float64 logits: each row's loss within 1e-12 of the mpmath value, however confident (margins to 600)."""
    rng = rng_for(15, C)
    failures: list[str] = []
    rows = 2 * SCALE if C >= 300 else 4 * SCALE
    for margin in MARGINS_F64:
        z, t = confident_rows(rng, rows, C, margin, torch.float64)
        got = _per_row(z, t)
        want = torch.tensor([exact_row_mp(z[i].tolist(), int(t[i])) for i in range(rows)], dtype=torch.float64)
        for i in range(rows):
            check(failures, "accuracy float64 rows", got[i], want[i], 1e-12, f"C={C} margin={margin} row {i}",
                  torch.float64)
        native = F.cross_entropy(z, t, reduction="none")  # recorded for the report, not asserted
        record("float64: torch native (accuracy rows)", float(rel_err(native, want).max()))
        record("float64: ours (accuracy rows)", float(rel_err(got, want).max()))
        batch = multiclass_cross_entropy(z, t)
        check(failures, "accuracy float64 batches", batch, want.mean(), 1e-12, f"C={C} margin={margin} batch")
        failures += [f"C={C} margin={margin}: negative loss {v}" for v in got.tolist() if v < 0]
    report(failures)


@pytest.mark.parametrize("C", CLASSES)
def test_float32_every_row_and_batch_within_2e6(C: int) -> None:
    """float32 logits: rows and batches within 2e-6 of the exact value on the float32 inputs (margins to 80)."""
    rng = rng_for(16, C)
    failures: list[str] = []
    rows = 3 * SCALE if C >= 300 else 6 * SCALE
    for margin in MARGINS_F32:
        z, t = confident_rows(rng, rows, C, margin, torch.float32)
        want = exact_rows_f64(z.double(), t)
        got = _per_row(z, t)
        native = F.cross_entropy(z, t, reduction="none")  # recorded for the report, not asserted
        record("float32: torch native (accuracy rows)", float(rel_err(native, want).max()))
        record("float32: ours (accuracy rows)", float(rel_err(got, want).max()))
        for i in range(rows):
            check(failures, "accuracy float32 rows", got[i], want[i], 2e-6, f"C={C} margin={margin} row {i}",
                  torch.float32)
        check(failures, "accuracy float32 batches", multiclass_cross_entropy(z, t), want.mean(), 2e-6,
              f"C={C} margin={margin} batch", torch.float32)
        failures += [f"C={C} margin={margin}: negative loss {v}" for v in got.tolist() if v < 0]
    report(failures)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=dname)
def test_never_negative_and_perplexity_never_below_one(dtype: torch.dtype) -> None:
    """Margins 15 to 35 nats at C in {16, 128, 1000}: each row's loss >= 0, each token's Perplexity >= 1."""
    rng = rng_for(17, str(dtype))
    failures: list[str] = []
    for C in (16, 128, 1000):
        for margin in (15.1, 20.3, 24.7, 30.3, 34.9):
            z, t = confident_rows(rng, 8 * SCALE, C, margin, dtype)
            got = _per_row(z, t)
            CASES["never negative"] += len(got)
            failures += [f"{dtype} C={C} margin={margin} row {i}: {v}" for i, v in enumerate(got.tolist()) if v < 0]
            metric = Perplexity()
            for i in range(z.shape[0]):
                ppl = float(metric(z[i : i + 1].unsqueeze(0), t[i : i + 1].unsqueeze(0)))
                CASES["Perplexity >= 1"] += 1
                if not ppl >= 1.0:
                    failures.append(f"{dtype} C={C} margin={margin} token {i}: Perplexity {ppl} < 1")
            if not float(metric.compute()) >= 1.0:
                failures.append(f"{dtype} C={C} margin={margin}: accumulated Perplexity {float(metric.compute())} < 1")
    report(failures)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dname)
def test_confident_perplexity_matches_exact(dtype: torch.dtype) -> None:
    """Perplexity of confident tokens = exp(exact mean loss): within the dtype's contract, never below 1."""
    rng = rng_for(18, str(dtype))
    failures: list[str] = []
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for C in (16, 128, 1000):
        for margin in (5.3, 20.7, 45.1, 79.7):
            z, t = confident_rows(rng, 6, C, margin, dtype)
            metric = Perplexity()
            metric.update(z.reshape(2, 3, C), t.reshape(2, 3))
            want = torch.exp(exact_rows_f64(z.double(), t).mean())
            check(failures, "Perplexity confident", metric.compute(), want, tol, f"{dtype} C={C} margin={margin}",
                  dtype)
    report(failures)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dname)
def test_binary_confident_logits_exact(dtype: torch.dtype) -> None:
    """Binary logits of +-(margin) on the right side: loss log1p(exp(-margin)), exact in float64 per element."""
    failures: list[str] = []
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    margins = [0.3, 5.3, 20.7, 30.3, 45.1, 79.7] + ([150.3, 599.7] if dtype == torch.float64 else [])
    for margin in margins:
        for sign in (1, -1):
            z = torch.tensor([sign * margin], dtype=dtype)
            y = torch.tensor([1 if sign > 0 else 0])
            want = torch.tensor(math.log1p(math.exp(-abs(float(z)))), dtype=torch.float64)
            got = binary_cross_entropy(z, y)
            check(failures, f"accuracy binary {dtype}", got, want, tol, f"z={float(z)} y={int(y)}", dtype)
    report(failures)



@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=dname)
@pytest.mark.parametrize("C", [16, 127, 128, 1000])
def test_issue_example_zeros_and_one_confident_logit(C: int, dtype: torch.dtype) -> None:
    """Issue 12's example: z = zeros(1, C), z[0, 0] = 30: the loss is log1p((C - 1) e^-30) (mpmath), not negative,
    and the Perplexity of the token is not below 1."""
    z = torch.zeros(1, C, dtype=dtype)
    z[0, 0] = 30
    want = torch.tensor([exact_row_mp(z[0].tolist(), 0)], dtype=torch.float64)
    failures: list[str] = []
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    check(failures, "accuracy issue example", multiclass_cross_entropy(z, torch.tensor([0])), want[0], tol,
          f"C={C} {dname(dtype)}", dtype)
    ppl = float(Perplexity()(z.unsqueeze(0), torch.tensor([[0]])))
    if not ppl >= 1.0:
        failures.append(f"C={C} {dname(dtype)}: Perplexity {ppl} < 1")
    report(failures)
