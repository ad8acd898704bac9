"""Oracle sweep of ``multiclass_cross_entropy``: every option against torch's float64 rules and scikit-learn.

References: ``F.cross_entropy`` / ``F.nll_loss`` / ``F.log_softmax`` in float64 (tests/oracle/oracle_refs.py),
``sklearn.metrics.log_loss``. Each test runs many cases and reports all failing ones at once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle_cases import (
    AVERAGES,
    DTYPES,
    FORMATS,
    LAYOUTS,
    SAMPLE_WEIGHTS,
    as_format,
    draw_configs,
    layout_of,
    logits,
    quiet_macro,
    rng_for,
    sample_weight,
    soft_targets,
)
from oracle_refs import RTOL, check, dname, mc_hard, mc_soft, report
from sklearn.metrics import log_loss

from xent_metrics.functional import multiclass_cross_entropy

SHAPES = {"2d": [(5, 3), (9, 7), (6, 20), (4, 130)], "kdim": [(3, 4, 2, 3), (2, 3, 3, 2), (4, 5, 1, 2)]}


def _preds(rng, shape, fmt, dtype, layout):
    values = as_format(logits(rng, shape), fmt)
    return layout_of(torch.tensor(values, dtype=dtype), layout)


def _hard_case(rng, cfg):
    shape = SHAPES[cfg["dims"]][rng.integers(len(SHAPES[cfg["dims"]]))]
    C, positions = shape[1], shape[:1] + shape[2:]
    preds = _preds(rng, shape, cfg["fmt"], cfg["dtype"], cfg["layout"])
    y = torch.tensor(rng.integers(0, C, size=positions))
    ii = cfg["ignore_index"]
    if ii == -100:
        y = torch.where(torch.tensor(rng.uniform(size=positions) < 0.25), -100, y)
    w = torch.tensor(rng.uniform(0.2, 2.3, size=C)) if cfg["weight"] else None
    s = sample_weight(rng, cfg["sample_weight"], positions)
    if s is not None:
        s = layout_of(s, cfg["layout"])
    return preds, layout_of(y, cfg["layout"]), w, s


@pytest.mark.parametrize("fmt", FORMATS)
def test_hard_targets_match_torch(fmt: str) -> None:
    """Class indices: micro = F.cross_entropy(weight, ignore_index, label_smoothing, 'mean'), weighted by s."""
    rng = rng_for(12, FORMATS.index(fmt))
    failures: list[str] = []
    for cfg in draw_configs(rng, 150, fmt=[fmt], dims=list(SHAPES), dtype=DTYPES, layout=LAYOUTS,
                            weight=[False, True], sample_weight=SAMPLE_WEIGHTS, ignore_index=[None, -100, 1],
                            label_smoothing=[0.0, 0.13], average=AVERAGES):
        preds, y, w, s = _hard_case(rng, cfg)
        kept = y != cfg["ignore_index"] if cfg["ignore_index"] is not None else torch.ones_like(y, dtype=torch.bool)
        if not bool((kept & (True if s is None else (s.reshape(s.shape + (1,) * (y.ndim - s.ndim)) > 0))).any()):
            continue  # everything ignored or of zero weight: no data (a warning and nan, tested elsewhere)
        eps = torch.finfo(preds.dtype).eps
        opts = dict(weight=w, sample_weight=s, ignore_index=cfg["ignore_index"], label_smoothing=cfg["label_smoothing"])
        want = mc_hard(preds.double(), y, fmt, eps, w, s, cfg["ignore_index"], cfg["label_smoothing"], cfg["average"])
        with quiet_macro():
            got = multiclass_cross_entropy(preds, y, input_format=fmt, average=cfg["average"], **opts)
        check(failures, f"multiclass hard {fmt}", got, want, RTOL[preds.dtype], f"{cfg}", preds.dtype)
    report(failures)


SOFT_KINDS = ["norm", "rand", "wrongaxis", "f32norm", "bf16norm"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", SOFT_KINDS)
def test_soft_targets_match_torch(fmt: str, kind: str) -> None:
    """Probability targets (normalised or not): loss_i = -sum_c w_c y'_ic log p_ic, mean over sum_i s_i."""
    rng = rng_for(12, 1 + FORMATS.index(fmt), SOFT_KINDS.index(kind))
    failures: list[str] = []
    for cfg in draw_configs(rng, 40, dims=list(SHAPES), dtype=DTYPES, layout=LAYOUTS, weight=[False, True],
                            sample_weight=SAMPLE_WEIGHTS, label_smoothing=[0.0, 0.13], average=AVERAGES):
        shape = SHAPES[cfg["dims"]][rng.integers(len(SHAPES[cfg["dims"]]))]
        preds = _preds(rng, shape, fmt, cfg["dtype"], cfg["layout"])
        y = layout_of(soft_targets(rng, shape, kind), cfg["layout"])
        w = torch.tensor(rng.uniform(0.2, 2.3, size=shape[1])) if cfg["weight"] else None
        s = sample_weight(rng, cfg["sample_weight"], shape[:1] + shape[2:])
        eps = torch.finfo(preds.dtype).eps
        ls = cfg["label_smoothing"]
        want = mc_soft(preds.double(), y, fmt, eps, w, s, ls, cfg["average"])
        with quiet_macro():
            got = multiclass_cross_entropy(preds, y, input_format=fmt, weight=w, sample_weight=s, label_smoothing=ls,
                                           average=cfg["average"])
        check(failures, f"multiclass soft {fmt}", got, want, RTOL[preds.dtype], f"{kind} {cfg}", preds.dtype)
    report(failures)


def test_soft_per_class_values_sum_to_micro() -> None:
    """With soft targets the per-class values, weighted by each class's share of the sample weight, give micro."""
    rng = rng_for(1203)
    failures: list[str] = []
    for _ in range(30):
        z = torch.tensor(logits(rng, (7, 5)))
        y = torch.tensor(rng.uniform(size=(7, 5)))
        s = torch.tensor(rng.uniform(0.1, 2.0, size=7))
        yp = 0.9 * y + 0.1 / 5
        shares = (s.unsqueeze(1) * yp / yp.sum(1, keepdim=True)).sum(0)
        per_class = multiclass_cross_entropy(z, y, sample_weight=s, label_smoothing=0.1, average="none")
        want = F.cross_entropy(z, y, label_smoothing=0.1, reduction="none").mul(s).sum() / s.sum()
        check(failures, "multiclass soft per-class", (per_class * shares).sum() / shares.sum(), want, 1e-12, "sum")
    report(failures)


def test_probs_match_sklearn_log_loss() -> None:
    """float64 probabilities (clipped, not renormalised) with sample weights: ``sklearn.metrics.log_loss``."""
    rng = rng_for(1204)
    failures: list[str] = []
    for n, C in [(1, 2), (6, 3), (40, 11), (25, 130)] * 10:
        p = as_format(logits(rng, (n, C)), "probs")
        y = rng.integers(0, C, size=n)
        p[0] = np.eye(C)[(y[0] + 1) % C]  # a true class of probability 0: clipped to eps
        s = rng.uniform(0.1, 2.0, size=n)
        want = torch.tensor(log_loss(y, p, sample_weight=s, labels=np.arange(C)), dtype=torch.float64)
        got = multiclass_cross_entropy(torch.tensor(p), torch.tensor(y), input_format="probs",
                                       sample_weight=torch.tensor(s))
        check(failures, "multiclass probs vs sklearn", got, want, 1e-12, f"n={n} C={C}", torch.float64)
    report(failures)


def test_ignore_index_equal_to_a_valid_class_drops_it() -> None:
    """ignore_index=1 with targets of class 1 present: those positions drop out (torch's rule), per class too."""
    rng = rng_for(1205)
    failures: list[str] = []
    for dtype in DTYPES:
        for _ in range(6):
            z = torch.tensor(logits(rng, (12, 4)), dtype=dtype)
            y = torch.tensor(rng.integers(0, 4, size=12))
            y[:2] = 1
            want = F.cross_entropy(z.double(), y, ignore_index=1)
            got = multiclass_cross_entropy(z, y, ignore_index=1)
            check(failures, "multiclass ignore_index=valid", got, want, RTOL[dtype], dname(dtype), dtype)
            per = multiclass_cross_entropy(z, y, ignore_index=1, average="none")
            check(failures, "multiclass ignore_index=valid", per[1:2], torch.tensor([float("nan")]), 0, "class 1 nan")
    report(failures)


@pytest.mark.parametrize("how", ["sample_weight", "ignore_index"])
def test_removed_position_with_infinite_loss_gives_finite_value(how: str) -> None:
    """Log-probabilities of -inf on the true class of a position whose weight is zero (or that is ignored): the
    position drops out, the value is torch's mean over the others (F.nll_loss ignores it the same way)."""
    lp = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.0, 0.4, 0.6], [0.7, 0.1, 0.2], [0.25, 0.25, 0.5]],
                                dtype=torch.float64))
    y = torch.tensor([2, 0, 1, 0])
    if how == "sample_weight":
        s = torch.tensor([0.3, 0.0, 1.7, 0.9], dtype=torch.float64)
        want = (F.nll_loss(lp[[0, 2, 3]], y[[0, 2, 3]], reduction="none") * s[[0, 2, 3]]).sum() / s.sum()
        got = multiclass_cross_entropy(lp, y, input_format="log_probs", sample_weight=s)
    else:
        y[1] = -100
        want = F.nll_loss(lp, y, ignore_index=-100)
        got = multiclass_cross_entropy(lp, y, input_format="log_probs", ignore_index=-100)
    failures: list[str] = []
    check(failures, "multiclass zero weight on inf", got, want, 1e-12, how, torch.float64)
    report(failures)
