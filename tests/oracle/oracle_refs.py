"""Independent references for the oracle suite, and the bookkeeping that counts and scores its cases.

Every expected value here comes from ``torch.nn.functional`` in float64, scikit-learn, scipy or mpmath,
following torch's documented rules (the ones the package's docstrings state). Nothing of ``xent_metrics``
is imported: a reference never re-derives the package's own computation.
"""

from __future__ import annotations

import math
import os
from collections import Counter

import mpmath
import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_expit
from torch import Tensor

#: ``ORACLE_PROFILE=long`` (or ``HYPOTHESIS_PROFILE=long``) multiplies the seeded case counts by this.
LONG = "long" in (os.environ.get("ORACLE_PROFILE", ""), os.environ.get("HYPOTHESIS_PROFILE", ""))
SCALE = 12 if LONG else 1
#: Cases run, per "task: check" (printed at the end of the session by tests/oracle/conftest.py).
CASES: Counter = Counter()
#: Worst relative error seen, per "dtype: who" (ours, torch native), printed with the counts.
WORST: dict[str, float] = {}
#: Relative tolerance per input dtype: the accuracy contract (float64 1e-12; float32, computed in float32, 2e-6).
RTOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-6, torch.bfloat16: 2e-6}


def dname(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def rel_err(got: Tensor, want: Tensor) -> Tensor:
    """Elementwise relative error in float64; nan where got and want are nan (or equal infinities) counts as 0."""
    got, want = got.double(), want.double()
    same = (got.isnan() & want.isnan()) | (got == want)
    err = (got - want).abs() / want.abs().clamp_min(1e-300)
    return torch.where(same, torch.zeros_like(err), torch.nan_to_num(err, nan=math.inf))


def record(key: str, err: float) -> None:
    WORST[key] = max(WORST.get(key, 0.0), err)


def check(failures: list[str], task: str, got: Tensor, want: Tensor, rtol: float, what: str, dtype=None) -> None:
    """Count one case; append a description to ``failures`` when ``got`` is not within ``rtol`` of ``want``."""
    CASES[task] += 1
    err = float(rel_err(got, want).max()) if want.numel() else 0.0
    if dtype is not None:
        record(f"{dname(dtype)}: ours ({task.split()[0]})", err)
    if not err <= rtol:
        failures.append(f"{what}: got {got.tolist()}, expected {want.tolist()}, rel err {err:.3g} > {rtol:g}")


def report(failures: list[str]) -> None:
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures[:12])


# ----------------------------------------------------------------------------------------------- multiclass


def exact_log_softmax(z64: Tensor) -> Tensor:
    """log softmax over dim 1, exact to a few float64 ulps also where p is close to 1.

    ``F.log_softmax`` (and ``F.cross_entropy``) take lse(z) - z_c: the absolute error is ~eps * |z|, so the
    relative error of a small -log p_c (a confident row) grows as 1 / loss (5e-12 at a margin of 11 nats).
    Where p_c > 1/2 this uses -log1p(sum_{j != c} exp(z_j - z_c)) instead (each term to |z_j - z_c| ulps).
    """
    C = z64.shape[1]
    d = z64.unsqueeze(1) - z64.unsqueeze(2)  # d[:, c, j] = z_j - z_c
    diagonal = torch.eye(C, dtype=torch.bool).reshape((1, C, C) + (1,) * (z64.ndim - 2))
    others = torch.exp(d.masked_fill(diagonal, -math.inf)).sum(2)
    return torch.where(others < 1, -torch.log1p(others), F.log_softmax(z64, dim=1))


def log_probs_of(preds64: Tensor, input_format: str, eps: float) -> Tensor:
    """Per-class log-probabilities: exact log softmax of logits, log of probs clipped to [eps, 1-eps], log-probs
    as given."""
    if input_format == "logits":
        return exact_log_softmax(preds64)
    if input_format == "probs":
        return torch.log(preds64.clamp(eps, 1 - eps))
    return preds64


def _bcast(w: Tensor, ndim: int) -> Tensor:
    """A (C,) class vector shaped to broadcast over (N, C, d1, ...)."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _per_position(s: Tensor | None, shape: torch.Size) -> Tensor:
    """Sample weights (None, per sample (N,) or per position) as float64 of the positions' ``shape``."""
    if s is None:
        return torch.ones(shape, dtype=torch.float64)
    return s.double().reshape(s.shape + (1,) * (len(shape) - s.ndim)).expand(shape)


def _weighted(loss: Tensor, s: Tensor) -> Tensor:
    """s * loss with a zero weight removing the entry even where the loss is inf."""
    return torch.where(s > 0, s * loss, torch.zeros_like(loss))


def _per_class(num: Tensor, den: Tensor, average: str) -> Tensor:
    """From per-class numerators and denominators (C,): micro over all, 'none' per class, 'macro' of the non-nan."""
    if average == "micro":
        return num.sum() / den.sum()
    per = torch.where(den > 0, num / den.where(den > 0, torch.ones_like(den)), torch.full_like(den, math.nan))
    return per if average == "none" else per[~per.isnan()].mean()


def mc_hard(preds64, y, fmt, eps, w=None, s=None, ii=None, ls=0.0, average="micro") -> Tensor:
    """Hard targets, torch's rule: per-position ``F.cross_entropy(..., reduction='none')`` (computed as F.nll_loss
    of exact log-probabilities plus torch's smoothing term); mean over s_i w[y_i]."""
    C, ndim = preds64.shape[1], preds64.ndim
    w64 = torch.ones(C, dtype=torch.float64) if w is None else w.double()
    kept = torch.ones_like(y, dtype=torch.bool) if ii is None else y != ii
    kw = {"weight": None if w is None else w64, "ignore_index": -100 if ii is None else ii}
    # torch's rule (F.cross_entropy's, on exact log-probabilities): (1 - ls) nll + ls / C sum_c w_c (-log p_c)
    lp = log_probs_of(preds64, fmt, eps)
    loss = (1 - ls) * F.nll_loss(lp, y, reduction="none", **kw)
    if ls:
        loss = loss + torch.where(kept, ls / C * -(lp * _bcast(w64, ndim)).sum(1), 0.0)
    s64 = _per_position(s, y.shape)
    den = torch.where(kept, s64 * w64[y.clamp(0, C - 1)], 0.0)
    num = torch.where(kept, _weighted(loss, s64), 0.0)
    if average == "micro":
        return num.sum() / den.sum()
    yk = torch.where(kept, y, C)  # ignored positions go to a spare class, dropped below
    nums = torch.zeros(C + 1, dtype=torch.float64).index_add_(0, yk.flatten(), num.flatten())[:C]
    dens = torch.zeros(C + 1, dtype=torch.float64).index_add_(0, yk.flatten(), den.flatten())[:C]
    return _per_class(nums, dens, average)


def mc_soft(preds64, y, fmt, eps, w=None, s=None, ls=0.0, average="micro") -> Tensor:
    """Probability targets, torch's rule: loss_i = -sum_c w_c y'_ic log p_ic, mean over sum_i s_i.

    Per class, s_i is split over the classes in proportion to the row y'_i (equally for an all-zero row).
    """
    C, ndim = preds64.shape[1], preds64.ndim
    w64 = torch.ones(C, dtype=torch.float64) if w is None else w.double()
    yp = (1 - ls) * y.double() + ls / C
    lp = log_probs_of(preds64, fmt, eps)
    terms = -torch.where(yp > 0, _bcast(w64, ndim) * yp * lp, 0.0)  # (N, C, ...)
    loss = terms.sum(1)
    s64 = _per_position(s, loss.shape)
    if average == "micro":
        return _weighted(loss, s64).sum() / s64.sum()
    mass = yp.sum(1, keepdim=True)
    share = torch.where(mass > 0, yp / mass.where(mass > 0, torch.ones_like(mass)), 1.0 / C)
    s_c = s64.unsqueeze(1)
    nums = _weighted(terms, s_c).transpose(0, 1).reshape(C, -1).sum(1)
    dens = (s_c * share).transpose(0, 1).reshape(C, -1).sum(1)
    return _per_class(nums, dens, average)


# ----------------------------------------------------------------------------------------- binary, multilabel


def _log1mexp(lp: Tensor) -> Tensor:
    """log(1 - exp(lp)) for lp <= 0, accurate on both sides of -log 2 (Maechler's rule)."""
    return torch.where(lp < -math.log(2), torch.log1p(-torch.exp(lp)), torch.log(-torch.expm1(lp)))


def bce_elements(preds64: Tensor, y: Tensor, fmt: str, eps: float, pos_weight=None, ls: float = 0.0) -> Tensor:
    """Elementwise BCE, torch's formula -(pos_weight y log p + (1 - y) log(1 - p)) with targets smoothed
    y (1 - ls) + ls / 2: scipy's ``log_expit`` of logits (``F.binary_cross_entropy_with_logits`` takes
    log(1 + exp(-|z|)), not log1p: 2e-11 off at |z| = 12, so it is no reference for confident logits),
    ``F.binary_cross_entropy`` terms on clipped probs, exact float64 terms of log-probs."""
    yp = y.double() * (1 - ls) + ls / 2
    pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float64)
    if fmt == "logits":
        neg_log_p = -torch.from_numpy(log_expit(preds64.numpy()))
        neg_log_q = -torch.from_numpy(log_expit(-preds64.numpy()))
    elif fmt == "probs":
        p = preds64.clamp(eps, 1 - eps)
        neg_log_p = F.binary_cross_entropy(p, torch.ones_like(p), reduction="none")
        neg_log_q = F.binary_cross_entropy(p, torch.zeros_like(p), reduction="none")
    else:
        neg_log_p, neg_log_q = -preds64, -_log1mexp(preds64)
    pos = yp * neg_log_p if pw is None else pw * yp * neg_log_p
    neg = (1 - yp) * neg_log_q
    return torch.where(yp > 0, pos, 0.0) + torch.where(yp < 1, neg, 0.0)


def bce_mean(loss: Tensor, y: Tensor, s=None, ii=None, average="micro", label_dim=None) -> Tensor:
    """Weighted mean of elementwise losses; ignored entries and zero weights drop out (even inf losses).

    ``label_dim=1`` gives per-label values for "none" / "macro" (multilabel).
    """
    if s is None:
        s64 = torch.ones(loss.shape, dtype=torch.float64)
    elif s.shape == loss.shape:  # per element
        s64 = s.double()
    elif s.ndim == 1:  # per sample
        s64 = s.double().reshape(s.shape + (1,) * (loss.ndim - 1)).expand(loss.shape)
    else:  # per position (N, d1, ...) of a multilabel (N, K, d1, ...)
        s64 = s.double().unsqueeze(1).expand(loss.shape)
    if ii is not None:
        s64 = torch.where(y == ii, 0.0, s64)
    num = _weighted(loss, s64)
    if label_dim is None or average == "micro":
        return num.sum() / s64.sum()
    K = loss.shape[1]
    nums = num.transpose(0, 1).reshape(K, -1).sum(1)
    dens = s64.transpose(0, 1).reshape(K, -1).sum(1)
    return _per_class(nums, dens, average)


# ----------------------------------------------------------------------------------------- exact row losses


def exact_rows_f64(z64: Tensor, t: Tensor) -> Tensor:
    """-log softmax(z)_t per row as log1p(sum_{j != t} exp(z_j - z_t)) in float64.

    For float32 (or lower) inputs upcast to float64 the differences are exact, so this is exact to a few
    float64 ulps of the sum: far inside the float32 contract.
    """
    d = z64 - z64.gather(1, t.unsqueeze(1))
    d = d.scatter(1, t.unsqueeze(1), -math.inf)
    return torch.log1p(torch.exp(d).sum(1))


def exact_row_mp(z_row: list[float], t: int, dps: int = 40) -> float:
    """The same loss with mpmath at ``dps`` digits from the exact float64 values: exact for any margin."""
    with mpmath.workdps(dps):
        zt = mpmath.mpf(z_row[t])
        total = mpmath.fsum(mpmath.exp(mpmath.mpf(v) - zt) for j, v in enumerate(z_row) if j != t)
        return float(mpmath.log1p(total))


def confident_rows(rng: np.random.Generator, n: int, C: int, margin: float, dtype: torch.dtype):
    """Rows of 0.3-ish logits whose true class leads the largest other logit by ``margin`` nats (in ``dtype``)."""
    z = rng.uniform(-0.35, 0.35, size=(n, C)) + rng.normal(scale=0.3, size=(n, C))
    t = rng.integers(0, C, size=n)
    z[np.arange(n), t] = -np.inf
    z[np.arange(n), t] = z.max(axis=1) + margin
    return torch.tensor(z, dtype=dtype), torch.tensor(t)


def ulp(value: float, dtype: torch.dtype) -> float:
    """One unit in the last place of ``value`` in ``dtype`` (the spacing at its binade)."""
    _, e = math.frexp(abs(value)) if value else (0.0, torch.finfo(dtype).minexp)
    return math.ldexp(torch.finfo(dtype).eps, e - 1)
