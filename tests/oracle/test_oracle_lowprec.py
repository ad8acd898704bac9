"""Low-precision check: float16, bfloat16 and float32 inputs are never less accurate than torch on the same dtype.

For each batch: the exact value on the inputs upcast to float64 (log1p of exact float64 differences for
softmax rows, scipy's ``log_expit`` for sigmoid logits, ``F.binary_cross_entropy`` for probabilities),
torch native (``F.cross_entropy``, ``F.nll_loss``, ``F.binary_cross_entropy(_with_logits)``) on the same
dtype, and ours. Our error may exceed torch's by at most one ulp of the dtype at the reference (torch
rounds its result to the dtype, we return float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle_cases import as_format, rng_for, sigmoid_format
from oracle_refs import CASES, SCALE, bce_elements, confident_rows, dname, exact_rows_f64, record, report, ulp

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy

LOW = [torch.float16, torch.bfloat16, torch.float32]


def _compare(failures: list[str], task: str, dtype, ours, native, want, what: str, group: str = "") -> None:
    """ours and native against the exact ``want``: |ours - want| <= |native - want| + ulp(want in dtype)."""
    CASES[f"low precision {task}"] += 1
    ours, native, want = float(ours), float(native), float(want)
    err_ours, err_native = abs(ours - want), abs(native - want)
    record(f"{dname(dtype)}: ours (low-precision check{group})", err_ours / abs(want))
    record(f"{dname(dtype)}: torch native (low-precision check{group})", err_native / abs(want))
    excess = (err_ours - err_native) / ulp(want, dtype)
    record(f"{dname(dtype)}: (ours - torch native) / ulp (low-precision check)", excess)
    if not err_ours <= err_native + ulp(want, dtype):
        failures.append(
            f"{task} {dname(dtype)} {what}: ours {ours!r} (rel err {err_ours / abs(want):.3g}) vs torch {native!r} "
            f"(rel err {err_native / abs(want):.3g}), exact {want!r}"
        )


def _softmax_batch(rng, dtype, n, C):
    """Rows of one of: plain 0.3-ish logits, wide logits, or confident rows (margins 5 to 690 nats)."""
    kind = rng.integers(3)
    if kind == 2:
        margin = float(rng.choice([5.3, 12.7, 20.3, 30.3, 45.1, 79.7, 103.9, 300.7, 689.7]))
        return (*confident_rows(rng, n, C, margin, dtype), ", confident")
    z = rng.normal(loc=0.3, scale=0.3 if kind == 0 else 6.1, size=(n, C))
    return torch.tensor(z, dtype=dtype), torch.tensor(rng.integers(0, C, size=n)), ", other"


@pytest.mark.parametrize("dtype", LOW, ids=dname)
def test_multiclass_logits_not_worse_than_torch(dtype: torch.dtype) -> None:
    rng = rng_for(19, dname(dtype))
    failures: list[str] = []
    for _ in range(50 * SCALE):
        n, C = int(rng.choice([1, 8, 64])), int(rng.choice([3, 16, 100, 128, 1000]))
        z, t, group = _softmax_batch(rng, dtype, n, C)
        want = exact_rows_f64(z.double(), t).mean()
        _compare(failures, "multiclass logits", dtype, multiclass_cross_entropy(z, t), F.cross_entropy(z, t), want,
                 f"n={n} C={C}", f" multiclass logits{group}")
    report(failures)


@pytest.mark.parametrize("fmt", ["probs", "log_probs"])
@pytest.mark.parametrize("dtype", LOW, ids=dname)
def test_multiclass_probs_not_worse_than_torch(dtype: torch.dtype, fmt: str) -> None:
    """Probabilities inside [eps, 1 - eps] (no clipping; bfloat16's eps is 2**-7, so C <= 16 there), so torch's
    nll_loss(log p) is the same quantity."""
    rng = rng_for(20, dname(dtype), fmt)
    failures: list[str] = []
    for _ in range(30 * SCALE):
        n, C = int(rng.choice([1, 8, 64])), int(rng.choice([3, 16] if dtype == torch.bfloat16 else [3, 16, 100]))
        values = torch.tensor(as_format(rng.normal(loc=0.3, scale=0.3, size=(n, C)), fmt), dtype=dtype)
        t = torch.tensor(rng.integers(0, C, size=n))
        assert fmt == "log_probs" or float(values.min()) >= torch.finfo(dtype).eps
        lp_native = torch.log(values) if fmt == "probs" else values
        want = F.nll_loss(torch.log(values.double()) if fmt == "probs" else values.double(), t)
        ours = multiclass_cross_entropy(values, t, input_format=fmt)
        _compare(failures, f"multiclass {fmt}", dtype, ours, F.nll_loss(lp_native, t), want, f"n={n} C={C}")
    report(failures)


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("fmt", ["logits", "probs"])
@pytest.mark.parametrize("dtype", LOW, ids=dname)
def test_sigmoid_not_worse_than_torch(dtype: torch.dtype, fmt: str, task: str) -> None:
    """Logits (some confident, to +-690 nats) and probabilities in [0.01, 0.99], hard and soft targets."""
    rng = rng_for(21, dname(dtype), fmt, task)
    failures: list[str] = []
    fn = binary_cross_entropy if task == "binary" else multilabel_cross_entropy
    for _ in range(30 * SCALE):
        shape = (int(rng.choice([1, 8, 64])),) + ((int(rng.choice([2, 5])),) if task == "multilabel" else ())
        z = rng.normal(loc=0.3, scale=float(rng.choice([0.3, 3.1, 30.7, 230.3])), size=shape)
        y = rng.integers(0, 2, size=shape).astype(float) if rng.integers(2) else rng.uniform(size=shape)
        if fmt == "probs":
            z = np.clip(z, -4.5, 4.5)
        x = torch.tensor(sigmoid_format(z, fmt), dtype=dtype)
        yt = torch.tensor(y, dtype=dtype)
        if fmt == "logits":
            want = bce_elements(x.double(), yt, "logits", 0.0).mean()
            native = F.binary_cross_entropy_with_logits(x, yt)
        else:
            want = F.binary_cross_entropy(x.double(), yt.double())
            native = F.binary_cross_entropy(x, yt)
        _compare(failures, f"{task} {fmt}", dtype, fn(x, yt, input_format=fmt), native, want, f"shape={shape}")
    report(failures)
