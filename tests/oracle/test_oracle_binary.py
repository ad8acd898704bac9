"""Oracle sweep of ``binary_cross_entropy`` and ``multilabel_cross_entropy`` against torch and scikit-learn.

References: ``F.binary_cross_entropy_with_logits`` (float64 ``pos_weight``), ``F.binary_cross_entropy`` on
clipped probabilities, exact float64 terms of log-probabilities; per-column ``sklearn.metrics.log_loss``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle_cases import (
    AVERAGES,
    DTYPES,
    FORMATS,
    LAYOUTS,
    draw_configs,
    layout_of,
    logits,
    quiet_macro,
    rng_for,
    sigmoid_format,
)
from oracle_refs import RTOL, bce_elements, bce_mean, check, report
from sklearn.metrics import log_loss

from xent_metrics.functional import binary_cross_entropy, multilabel_cross_entropy

BINARY_SHAPES = [(1,), (7,), (40,), (3, 4), (2, 3, 2)]
MULTILABEL_SHAPES = [(5, 3), (9, 7), (30, 2), (3, 4, 2, 3), (2, 3, 5)]


def _targets(rng, shape, kind, ii):
    if kind == "soft":
        return torch.tensor(rng.uniform(size=shape))
    y = torch.tensor(rng.integers(0, 2, size=shape))
    if ii is not None:
        y = torch.where(torch.tensor(rng.uniform(size=shape) < 0.25), ii, y)
    return y.bool() if kind == "bool" and ii is None else y


def _sample_weight(rng, kind, shape, multilabel):
    if kind is None:
        return None
    if kind == "sample":
        wshape = shape[:1]
    else:  # per element (binary) or per position (multilabel: every label of the position shares it)
        wshape = shape[:1] + shape[2:] if multilabel else shape
    s = torch.tensor(rng.uniform(0.05, 2.3, size=wshape))
    s.view(-1)[0] = 0.0 if s.numel() > 2 else s.view(-1)[0]
    return s


def _pos_weight(rng, kind, K):
    if kind is None:
        return None
    if kind == "float":
        return 0.3
    return torch.tensor(rng.uniform(0.2, 2.3, size=K))


def _case(rng, cfg, shapes, multilabel):
    shape = shapes[rng.integers(len(shapes))]
    preds = layout_of(torch.tensor(sigmoid_format(logits(rng, shape), cfg["fmt"]), dtype=cfg["dtype"]), cfg["layout"])
    ii = cfg["ignore_index"] if cfg["target"] != "soft" else None
    y = layout_of(_targets(rng, shape, cfg["target"], ii), cfg["layout"])
    s = _sample_weight(rng, cfg["sample_weight"], shape, multilabel)
    K = shape[1] if multilabel else 1
    pw = _pos_weight(rng, cfg["pos_weight"], K)
    if pw is not None and not multilabel and not isinstance(pw, float):
        pw = pw.reshape(1)
    if isinstance(pw, float) and multilabel:
        pw = torch.full((K,), 0.3, dtype=torch.float64)
    return preds, y, s, pw, ii


def _has_weight(y, s, ii, multilabel):
    kept = torch.ones(y.shape, dtype=torch.bool) if ii is None else y != ii
    if s is None:
        return bool(kept.any())
    sw = s.reshape(s.shape[:1] + (1,) * (y.ndim - 1)) if s.ndim == 1 else (s.unsqueeze(1) if multilabel else s)
    return bool((kept & (sw > 0)).any())


AXES = dict(dtype=DTYPES, layout=LAYOUTS, target=["hard", "bool", "soft"], sample_weight=[None, "sample", "position"],
            ignore_index=[None, -1, 1], pos_weight=[None, "float", "tensor"], label_smoothing=[0.0, 0.13])


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_matches_torch(fmt: str) -> None:
    """Weighted mean of F.binary_cross_entropy(_with_logits) elements; ignored / zero-weight entries drop out."""
    rng = rng_for(13, FORMATS.index(fmt))
    failures: list[str] = []
    for cfg in draw_configs(rng, 150, fmt=[fmt], **AXES):
        preds, y, s, pw, ii = _case(rng, cfg, BINARY_SHAPES, multilabel=False)
        if not _has_weight(y, s, ii, False):
            continue
        eps, ls = torch.finfo(preds.dtype).eps, cfg["label_smoothing"]
        yv = torch.where(y == ii, 0, y) if ii is not None else y
        want = bce_mean(bce_elements(preds.double(), yv, fmt, eps, pw, ls), y, s, ii)
        got = binary_cross_entropy(preds, y, input_format=fmt, pos_weight=pw, sample_weight=s, ignore_index=ii,
                                   label_smoothing=ls)
        check(failures, f"binary {fmt}", got, want, RTOL[preds.dtype], f"{cfg}", preds.dtype)
    report(failures)


@pytest.mark.parametrize("fmt", FORMATS)
def test_multilabel_matches_torch(fmt: str) -> None:
    """Per label (average none), unweighted mean of labels (macro), or all entries (micro)."""
    rng = rng_for(14, FORMATS.index(fmt))
    failures: list[str] = []
    for cfg in draw_configs(rng, 150, fmt=[fmt], average=AVERAGES, **AXES):
        preds, y, s, pw, ii = _case(rng, cfg, MULTILABEL_SHAPES, multilabel=True)
        if not _has_weight(y, s, ii, True):
            continue
        eps, ls = torch.finfo(preds.dtype).eps, cfg["label_smoothing"]
        yv = torch.where(y == ii, 0, y) if ii is not None else y
        pw_b = None if pw is None else pw.reshape((1, -1) + (1,) * (preds.ndim - 2))
        want = bce_mean(bce_elements(preds.double(), yv, fmt, eps, pw_b, ls), y, s, ii, cfg["average"], label_dim=1)
        with quiet_macro():
            got = multilabel_cross_entropy(preds, y, input_format=fmt, pos_weight=pw, sample_weight=s, ignore_index=ii,
                                           label_smoothing=ls, average=cfg["average"])
        check(failures, f"multilabel {fmt}", got, want, RTOL[preds.dtype], f"{cfg}", preds.dtype)
    report(failures)


def test_against_sklearn_log_loss_per_column() -> None:
    """float64 probabilities: binary = log_loss(y, p); multilabel "none" = log_loss of each column (never of the
    whole indicator matrix), "macro" their mean."""
    rng = rng_for(1205)
    failures: list[str] = []
    for n, K in [(1, 1), (6, 3), (40, 5), (200, 2)] * 8:
        p = sigmoid_format(logits(rng, (n, K)), "probs")
        p[0, 0] = 1.0  # clipped to 1 - eps
        y = rng.integers(0, 2, size=(n, K))
        s = rng.uniform(0.1, 2.0, size=n)
        cols = [log_loss(y[:, k], p[:, k], sample_weight=s, labels=[0, 1]) for k in range(K)]
        pt, yt, st = torch.tensor(p), torch.tensor(y), torch.tensor(s)
        got = multilabel_cross_entropy(pt, yt, input_format="probs", sample_weight=st, average="none")
        check(failures, "multilabel vs sklearn", got, torch.tensor(cols, dtype=torch.float64), 1e-12, f"{n}x{K}")
        got = multilabel_cross_entropy(pt, yt, input_format="probs", sample_weight=st, average="macro")
        check(failures, "multilabel vs sklearn", got, torch.tensor(np.mean(cols), dtype=torch.float64), 1e-12, "macro")
        got = binary_cross_entropy(pt[:, 0], yt[:, 0], input_format="probs", sample_weight=st)
        check(failures, "binary vs sklearn", got, torch.tensor(cols[0], dtype=torch.float64), 1e-12, f"{n}")
    report(failures)


@pytest.mark.parametrize("pos_weight", [0.3, 0.1, 1 / 3, 1.7, 1e-3])
def test_pos_weight_float_is_not_rounded(pos_weight: float) -> None:
    """A Python float pos_weight means that float64 value (torch's float64 pos_weight), not its float32 rounding."""
    rng = rng_for(1206)
    failures: list[str] = []
    for n in (1, 5, 64):
        z = torch.tensor(logits(rng, (n,)))
        y = torch.tensor(rng.integers(0, 2, size=n))
        y[0] = 1
        want = bce_elements(z, y, "logits", 0.0, torch.tensor(pos_weight, dtype=torch.float64)).mean()
        got = binary_cross_entropy(z, y, pos_weight=pos_weight)
        check(failures, "binary pos_weight float", got, want, 1e-12, f"pos_weight={pos_weight} n={n}")
    report(failures)


INF_CASES = [  # (task, preds as log-probs, target, which entries are removed)
    ("binary", [0.0, math.log(0.3)], [0, 1]),
    ("binary", [-math.inf, math.log(0.3)], [1, 0]),
    ("multilabel", [[math.log(0.2), math.log(0.3)], [0.0, math.log(0.7)], [math.log(0.6), -math.inf]],
     [[0, 1], [0, 1], [1, 1]]),
]


@pytest.mark.parametrize(("task", "preds", "target"), INF_CASES)
@pytest.mark.parametrize("how", ["sample_weight", "ignore_index"])
def test_removed_entry_with_infinite_loss_gives_finite_value(task, preds, target, how) -> None:
    """An entry of infinite loss (log-prob 0 on a negative target, -inf on a positive one) whose weight is zero, or
    whose target is ignored, is removed: the result is the finite mean of the other entries."""
    p, y = torch.tensor(preds, dtype=torch.float64), torch.tensor(target)
    elements = bce_elements(p, y, "log_probs", 0.0)
    removed = elements.isinf()
    fn = binary_cross_entropy if task == "binary" else multilabel_cross_entropy
    if how == "sample_weight":
        s = 1.3 * ((~removed).double() if task == "binary" else (~removed.any(1)).double())
        opts = {"sample_weight": s}
        weights = s if task == "binary" else s.unsqueeze(1).expand(p.shape)
    else:
        y = torch.where(removed, -1, y)
        opts, weights = {"ignore_index": -1}, (~removed).double()
    want = torch.where(weights > 0, weights * elements, 0.0).sum() / weights.sum()
    got = fn(p, y, input_format="log_probs", **opts)
    failures: list[str] = []
    check(failures, f"{task} zero weight on inf", got, want, 1e-12, f"{how} {preds} {target}")
    report(failures)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_small_probabilities_of_negatives_within_contract(task: str, dtype: torch.dtype) -> None:
    """-log(1 - p) for small p on a negative target: the exact value is -log1p(-p) of the given p, clipped to
    [eps, 1 - eps] (torch's F.binary_cross_entropy in float64 computes it so); 1 - p rounded first loses digits."""
    failures: list[str] = []
    fn = binary_cross_entropy if task == "binary" else multilabel_cross_entropy
    for p in (0.3, 1e-2, 1.7e-3, 1e-4, 3.1e-5, 1e-6, 1e-9):
        x = torch.full((3, 2), p, dtype=dtype)
        x[0, 1] = p * 1.3
        x = x if task == "multilabel" else x.flatten()
        eps = torch.finfo(dtype).eps
        want = F.binary_cross_entropy(x.double().clamp(eps, 1 - eps), torch.zeros(x.shape, dtype=torch.float64))
        got = fn(x, torch.zeros(x.shape, dtype=torch.long), input_format="probs")
        check(failures, f"{task} small p", got, want, RTOL[dtype], f"{dtype} p={p}", dtype)
    report(failures)
