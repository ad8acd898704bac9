"""Oracle sweep of the Metric classes: uneven batch splits, an empty batch, forward, and a merge of two halves.

Each scenario draws one dataset; the metric sees it in pieces, the reference (tests/oracle/oracle_refs.py, torch F
in float64) sees it whole. Normalized entropies are checked where the reference is unambiguous: the loss over the
entropy of the weighted base rate / class prior, without label smoothing, class weights or pos_weight.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from oracle_cases import (
    AVERAGES,
    as_format,
    draw_configs,
    layout_of,
    logits,
    quiet_macro,
    rng_for,
    sigmoid_format,
    soft_targets,
)
from oracle_refs import RTOL, bce_elements, bce_mean, check, mc_hard, mc_soft, report

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)

DT = [torch.float64, torch.float32]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of Bernoulli rates p, float64."""
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


def _weights(rng, positions, kind):
    """Per sample (N,) or per position (N, d1, ...: a token of Perplexity), uniform in (0.05, 2.3) with a zero on
    sample 0 (the first batch holds 2 or more samples: a batch of weight 0 only is refused by design)."""
    if kind is None:
        return None
    s = torch.tensor(rng.uniform(0.05, 2.3, size=positions[:1] if kind == "sample" else positions))
    s[0] = 0.0
    return s


def _binary(rng, cfg):
    n, fmt, ne = 31, cfg["fmt"], cfg["ne"]
    preds = torch.tensor(sigmoid_format(logits(rng, (n,)), fmt), dtype=cfg["dtype"])
    y = torch.tensor(rng.integers(0, 2, size=n))
    ii, ls = (None, 0.0) if ne else (cfg["ignore_index"], 0.13)
    if ii is not None:
        y[::5] = ii
    pw = None if ne else cfg["pos_weight"]
    eps = torch.finfo(preds.dtype).eps

    def ref(p, t, s):
        bce = bce_mean(bce_elements(p.double(), torch.where(t == ii, 0, t) if ii else t, fmt, eps, pw, ls), t, s, ii)
        if not ne:
            return bce
        sw = torch.ones(t.shape, dtype=torch.float64) if s is None else s.double()
        H = _entropy((sw * t).sum() / sw.sum())
        return bce / H if H > 0 else torch.tensor(math.nan, dtype=torch.float64)

    cls = BinaryNormalizedEntropy if ne else BinaryCrossEntropy
    return (lambda: cls(input_format=fmt, pos_weight=pw, ignore_index=ii, label_smoothing=ls)), (preds, y), ref


def _multiclass(rng, cfg):
    n, C, fmt, ne, average = 29, 5, cfg["fmt"], cfg["ne"], cfg["average"]
    preds = torch.tensor(as_format(logits(rng, (n, C, 2)), fmt), dtype=cfg["dtype"])
    soft = cfg["soft"] and not ne
    y = soft_targets(rng, (n, C, 2), "rand") if soft else torch.tensor(rng.integers(0, C, size=(n, 2)))
    ii = None if soft else cfg["ignore_index"]
    weighted = not ne or cfg["pos_weight"] is not None  # NE: class weights enter the numerator only (documented)
    w = torch.tensor(rng.uniform(0.2, 2.3, size=C)) if weighted else None
    ls = 0.0 if ne else 0.13
    eps = torch.finfo(preds.dtype).eps
    avg = average

    def ref(p, t, s):
        if soft:
            return mc_soft(p.double(), t, fmt, eps, w, s, ls, avg)
        ce = mc_hard(p.double(), t, fmt, eps, w, s, ii, ls, avg)
        if not ne:
            return ce
        kept = (t != ii) if ii is not None else torch.ones(t.shape, dtype=torch.bool)
        if s is None:
            sw = torch.ones(t.shape, dtype=torch.float64)
        else:
            sw = s.double() if s.shape == t.shape else s.double().unsqueeze(1).expand(t.shape)
        sw = sw * kept
        prior = torch.stack([(sw * (t == c)).sum() for c in range(C)]) / sw.sum()
        H = -torch.xlogy(prior, prior).sum()
        return ce / H if H > 0 else torch.full_like(ce, math.nan)

    cls = MulticlassNormalizedEntropy if ne else MulticlassCrossEntropy
    opts = dict(input_format=fmt, weight=w, ignore_index=ii, label_smoothing=ls, average=avg)
    return (lambda: cls(C, **opts)), (preds, y), ref


def _multilabel(rng, cfg):
    n, K, fmt, ne, average = 27, 4, cfg["fmt"], cfg["ne"], cfg["average"]
    preds = torch.tensor(sigmoid_format(logits(rng, (n, K)), fmt), dtype=cfg["dtype"])
    y = torch.tensor(rng.integers(0, 2, size=(n, K)))
    ii = cfg["ignore_index"]
    if ii is not None:
        y[::4, 1] = ii
    pw = None if ne else torch.tensor(rng.uniform(0.2, 2.3, size=K))
    ls = 0.0 if ne else 0.13
    eps = torch.finfo(preds.dtype).eps
    avg = average

    def ref(p, t, s):
        loss = bce_elements(p.double(), torch.where(t == ii, 0, t) if ii is not None else t, fmt, eps, pw, ls)
        if not ne:
            return bce_mean(loss, t, s, ii, avg, label_dim=1)
        sw = (torch.ones(t.shape[:1], dtype=torch.float64) if s is None else s.double()).unsqueeze(1).expand(t.shape)
        sw = torch.where(t == ii, 0.0, sw) if ii is not None else sw
        L, W = (torch.where(sw > 0, sw * loss, 0.0)).sum(0), sw.sum(0)
        H = _entropy((sw * t).sum(0) / W)
        per_label = torch.where(H > 0, L / (W * H), math.nan)
        if avg == "none":
            return per_label
        if avg == "macro":
            return per_label[~per_label.isnan()].mean()
        return L.sum() / (W * H).sum() if (W * H).sum() > 0 else torch.tensor(math.nan, dtype=torch.float64)

    cls = MultilabelNormalizedEntropy if ne else MultilabelCrossEntropy
    return (lambda: cls(K, input_format=fmt, pos_weight=pw, ignore_index=ii, label_smoothing=ls, average=avg)), (
        preds, y), ref


def _perplexity(rng, cfg):
    B, L, V, fmt = 13, 3, 7, cfg["fmt"]
    preds = torch.tensor(as_format(logits(rng, (B, L, V)), fmt, axis=-1), dtype=cfg["dtype"])
    y = torch.tensor(rng.integers(0, V, size=(B, L)))
    ii = cfg["ignore_index"]
    if ii is not None:
        y[::3, 0] = ii
    eps = torch.finfo(preds.dtype).eps

    def ref(p, t, s):
        return torch.exp(mc_hard(p.double().movedim(-1, 1), t, fmt, eps, None, s, ii))

    return (lambda: Perplexity(ignore_index=ii, input_format=fmt)), (preds, y), ref


SCENARIOS = {"binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel, "perplexity": _perplexity}


def _cuts(rng, n):
    """Uneven split points with an empty batch: e.g. [0, 4, 4, 5, 19, n]."""
    inner = sorted(rng.choice(range(2, n), size=3, replace=False).tolist())
    return [0, inner[0], inner[0], *inner[1:], n]


def _piece(data, s, lo, hi, layout):
    return [layout_of(x[lo:hi], layout) if hi > lo else x[lo:hi] for x in (*data, s) if x is not None]


def _run(failures, task, cfg, make, data, ref, s, rng):
    """Update over uneven batches (one empty), forward on each non-empty batch, and merge two halves."""
    n, rtol, what = data[0].shape[0], RTOL[data[0].dtype], f"{task} {cfg}"
    metric, cuts = make(), _cuts(rng, n)
    for lo, hi in itertools.pairwise(cuts):
        batch = _piece(data, s, lo, hi, cfg["layout"])
        if hi - lo < 3:
            metric.update(*batch)
            continue
        with quiet_macro():
            got, want = metric(*batch), ref(batch[0], batch[1], batch[2] if s is not None else None)
        check(failures, f"{task} metric forward", got, want, rtol, f"{what} forward [{lo}:{hi}]", data[0].dtype)
    with quiet_macro():
        want = ref(*data, s)
        check(failures, f"{task} metric compute", metric.compute(), want, rtol, f"{what} compute {cuts}", data[0].dtype)
        halves = [make(), make()]
        for half, (lo, hi) in zip(halves, [(0, n // 2), (n // 2, n)], strict=True):
            half.update(*_piece(data, s, lo, hi, cfg["layout"]))
        halves[0].merge_state(halves[1])
        check(failures, f"{task} metric merge", halves[0].compute(), want, rtol, f"{what} merge", data[0].dtype)


@pytest.mark.parametrize("task", list(SCENARIOS))
@pytest.mark.parametrize("ne", [False, True], ids=["CE", "NE"])
def test_metric_classes_match_reference_on_any_split(task: str, ne: bool) -> None:
    if ne and task == "perplexity":
        pytest.skip("Perplexity has no normalized entropy")
    rng = rng_for(22, task, ne)
    failures: list[str] = []
    for cfg in draw_configs(rng, 24, fmt=["logits", "probs", "log_probs"], dtype=DT, ne=[ne], soft=[False, True],
                            ignore_index=[None, -1, 1], pos_weight=[None, 0.3], average=AVERAGES,
                            sample_weight=[None, "sample", "position"], layout=["plain", "transposed", "sliced"]):
        if task == "binary" and cfg["ignore_index"] == 1:
            cfg["ignore_index"] = -1  # ignoring every positive leaves the base rate at 0: NE undefined
        make, data, ref = SCENARIOS[task](rng, cfg)
        preds = data[0]
        positions = data[1].shape if task in ("binary", "perplexity") else preds.shape[:1] + preds.shape[2:]
        s = _weights(rng, positions, cfg["sample_weight"])
        _run(failures, task, cfg, make, data, ref, s, rng)
    report(failures)


def test_metric_collection_members_keep_their_own_options() -> None:
    """A MetricCollection (compute groups on, the default) of metrics that differ only in an option that changes
    the update: each member equals its own reference, although the first batch holds no class 2 (equal states)."""
    from torchmetrics import MetricCollection

    rng = rng_for(23)
    z = torch.tensor(as_format(logits(rng, (24, 3)), "log_probs"))
    y = torch.tensor(rng.integers(0, 3, size=24))
    y[:8] = torch.tensor(rng.integers(0, 2, size=8))  # the first batch: classes 0 and 1 only
    w = torch.tensor([0.3, 1.7, 0.9])
    members = {
        "plain": (MulticlassCrossEntropy(3), dict(w=None, ii=None, ls=0.0, fmt="logits")),
        "no_bg": (MulticlassCrossEntropy(3, ignore_index=2), dict(w=None, ii=2, ls=0.0, fmt="logits")),
        "weighted": (MulticlassCrossEntropy(3, weight=w), dict(w=w, ii=None, ls=0.0, fmt="logits")),
        "smoothed": (MulticlassCrossEntropy(3, label_smoothing=0.1), dict(w=None, ii=None, ls=0.1, fmt="logits")),
        "log_probs": (MulticlassCrossEntropy(3, input_format="log_probs"), dict(w=None, ii=None, ls=0.0,
                                                                                  fmt="log_probs")),
    }
    collection = MetricCollection({name: metric for name, (metric, _) in members.items()})
    for lo, hi in [(0, 8), (8, 24)]:
        collection.update(z[lo:hi], y[lo:hi])
    values = collection.compute()
    failures: list[str] = []
    for name, (_, o) in members.items():
        want = mc_hard(z, y, o["fmt"], 2.0**-52, o["w"], None, o["ii"], o["ls"])
        check(failures, "MetricCollection members", values[name], want, 1e-12, name, torch.float64)
    bce = MetricCollection({"plain": BinaryCrossEntropy(), "pw": BinaryCrossEntropy(pos_weight=0.3),
                            "ii": BinaryCrossEntropy(ignore_index=1)})
    zb, yb = z[:, 0] - z[:, 1], y.clamp(max=1)
    yb[:8] = 0  # the first batch: negatives only, so pos_weight and ignore_index=1 leave the states equal
    for lo, hi in [(0, 8), (8, 24)]:
        bce.update(zb[lo:hi], yb[lo:hi])
    for name, pw, ii in [("plain", None, None), ("pw", 0.3, None), ("ii", None, 1)]:
        want = bce_mean(bce_elements(zb, yb, "logits", 0.0, pw), yb, None, ii)
        check(failures, "MetricCollection members", bce.compute()[name], want, 1e-12, f"binary {name}", torch.float64)
    report(failures)
