"""Regression tests for the six defects of the trust issue, each against an independent reference.

References: ``torch.nn.functional`` in float64, scikit-learn, and mpmath for tiny losses. Nothing from the
package computes an expected value.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    Perplexity,
)
from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy


def _exact_nll(row: list[float], t: int) -> float:
    """``-log softmax(row)[t]`` in 60-digit arithmetic, as ``log1p(sum_{j != t} exp(z_j - z_t))``."""
    with mpmath.workdps(60):
        z = [mpmath.mpf(v) for v in row]
        return float(mpmath.log1p(mpmath.fsum(mpmath.exp(v - z[t]) for j, v in enumerate(z) if j != t)))


def _rel(got: float, ref: float) -> float:
    return abs(got - ref) / abs(ref)


# ------------------------------------------------------------------- 1. soft targets not summing to 1
def _soft_reference(z: torch.Tensor, y: torch.Tensor, s: torch.Tensor, w: torch.Tensor, ls: float) -> tuple:
    """The micro value by torch (per-row ``F.cross_entropy``, weighted by ``s``, over ``sum(s)``); per class, the
    documented definition (torch has no per-class soft-target reduction): each sample's weight split over the
    classes by its (smoothed) target row, so the shares add up to ``s`` and recombine to the torch micro value.
    """
    rows = F.cross_entropy(z.double(), y.double(), weight=w, label_smoothing=ls, reduction="none")
    micro = (s * rows).sum() / s.sum()
    lp = F.log_softmax(z.double(), 1)
    y = y.double() * (1 - ls) + ls / z.shape[1]
    loss = -(s[:, None] * w[None, :] * y * lp)
    share = s[:, None] * y / y.sum(1, keepdim=True)
    per_class = loss.sum(0) / share.sum(0)
    torch.testing.assert_close((share.sum(0) * per_class).sum() / s.sum(), micro, rtol=1e-13, atol=0)
    return micro, per_class


def test_soft_targets_that_do_not_sum_to_one_follow_torch_mean() -> None:
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.rand(40, 5, generator=g, dtype=torch.float64)
    assert multiclass_cross_entropy(z, y).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-12)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.3
    expected = F.cross_entropy(z, y, weight=w, label_smoothing=0.3).item()
    got = multiclass_cross_entropy(z, y, weight=w, label_smoothing=0.3).item()
    assert got == pytest.approx(expected, rel=1e-12)
    # K-dim, normalised along the wrong (last) axis
    zk, yk = torch.randn(4, 3, 5, 6, generator=g, dtype=torch.float64), torch.rand(4, 3, 5, 6, generator=g)
    yk = (yk / yk.sum(-1, keepdim=True)).double()
    assert multiclass_cross_entropy(zk, yk).item() == pytest.approx(F.cross_entropy(zk, yk).item(), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_soft_targets_normalised_in_low_precision_keep_1e12(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(64, 7, generator=g, dtype=torch.float64)
    y = torch.rand(64, 7, generator=g).to(dtype)
    y = y / y.sum(1, keepdim=True)  # rows off 1 by 1e-7 (float32) to 1e-3 (bfloat16)
    y64 = y.double()
    assert multiclass_cross_entropy(z, y64).item() == pytest.approx(F.cross_entropy(z, y64).item(), rel=1e-12)


def test_soft_target_metric_split_and_per_class_averages_match_the_reference() -> None:
    g = torch.Generator().manual_seed(3)
    z, y = torch.randn(30, 4, generator=g, dtype=torch.float64), torch.rand(30, 4, generator=g, dtype=torch.float64)
    s, w, ls = torch.rand(30, generator=g, dtype=torch.float64), torch.tensor([0.3, 1.7, 0.9, 1.1]).double(), 0.1
    micro, per_class = _soft_reference(z, y, s, w, ls)
    for average, expected in [("micro", micro), ("none", per_class), ("macro", per_class.mean())]:
        metric = MulticlassCrossEntropy(4, weight=w, label_smoothing=ls, average=average)
        for part in (slice(0, 7), slice(7, 8), slice(8, 30)):
            metric.update(z[part], y[part], s[part])
        torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=0)
        functional = multiclass_cross_entropy(z, y, weight=w, label_smoothing=ls, sample_weight=s, average=average)
        torch.testing.assert_close(functional, expected, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------- 2. confident rows
@pytest.mark.parametrize("classes", [2, 10, 128, 1000])
def test_confident_float32_rows_are_positive_and_within_2e6(classes: int) -> None:
    g = torch.Generator().manual_seed(classes)
    for margin in [0.3, 20.3, 30.3, 55.7, 79.7, 103.9, 300.7, 689.7]:
        z = torch.randn(3, classes, generator=g) * 0.3
        z[:, 0] = margin
        got = multiclass_cross_entropy(z, torch.zeros(3, dtype=torch.long)).item()
        ref = sum(_exact_nll(row, 0) for row in z.double().tolist()) / 3
        assert got > 0
        assert _rel(got, ref) <= 2e-6, (margin, got, ref)
    z = torch.zeros(1, 128)
    z[0, 0] = 30  # the reported case: -3.3e-8 before
    assert multiclass_cross_entropy(z, torch.tensor([0])).item() == pytest.approx(_exact_nll([30.0] + [0.0] * 127, 0))


def test_float64_margins_beyond_the_exp_range_stay_finite_and_exact() -> None:
    z = torch.tensor([[330.0, -500.0, 100.0], [-0.3, 800.3, -700.1]], dtype=torch.float64)
    expected = [_exact_nll(z[0].tolist(), 1), _exact_nll(z[1].tolist(), 1)]
    got = multiclass_cross_entropy(z, torch.tensor([1, 1])).item()
    assert _rel(got, sum(expected) / 2) <= 1e-12
    assert multiclass_cross_entropy(z[:1], torch.tensor([1])).item() == pytest.approx(expected[0], rel=1e-12)
    assert multiclass_cross_entropy(z[1:], torch.tensor([1])).item() == pytest.approx(expected[1], rel=1e-12)


@pytest.mark.parametrize("classes", [2, 16, 200])
def test_confident_float64_rows_are_within_1e12_up_to_690_nats(classes: int) -> None:
    g = torch.Generator().manual_seed(7 + classes)
    for margin in [0.3, 30.3, 79.7, 300.3, 599.7, 689.7]:
        z = torch.randn(1, classes, generator=g, dtype=torch.float64)
        z[0, 1] = margin
        got = multiclass_cross_entropy(z, torch.tensor([1])).item()
        assert _rel(got, _exact_nll(z[0].tolist(), 1)) <= 1e-12, margin


def _softplus_mp(x: float) -> float:
    """``log(1 + exp(x))`` in 60-digit arithmetic."""
    with mpmath.workdps(60):
        return float(mpmath.log1p(mpmath.exp(mpmath.mpf(x))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_sigmoid_losses_past_float32_exp_range_keep_their_digits(dtype: torch.dtype) -> None:
    """Issue 20: float32 [100.0] with target 1 gave the subnormal 3.92e-44 (exact 3.72e-44), [104.0] gave 0."""
    for margin in [86.9, 87.9, 100.0, 104.0, 300.7, 689.7]:
        z = torch.tensor([margin, -margin], dtype=dtype)
        y = torch.tensor([1, 0])
        want = _softplus_mp(-float(z[0]))
        assert _rel(binary_cross_entropy(z, y).item(), want) <= 2e-6, margin
        assert _rel(binary_cross_entropy(-float(z[0]) * torch.ones(1, dtype=dtype), torch.tensor([0]),
                                         input_format="log_probs").item(),
                    float(-mpmath.log1p(-mpmath.exp(mpmath.mpf(-float(z[0])))))) <= 2e-6, margin  # fmt: skip
        per_label = multilabel_cross_entropy(z.reshape(1, 2).repeat(5, 1), y.reshape(1, 2).repeat(5, 1), average="none")
        assert max(_rel(v, want) for v in per_label.tolist()) <= 2e-6, margin
        metric = BinaryCrossEntropy()
        metric.update(z[:1], y[:1])
        metric.update(z[1:], y[1:])
        assert _rel(metric.compute().item(), want) <= 2e-6, margin
    issue_case = binary_cross_entropy(torch.tensor([100.0]), torch.tensor([1])).item()
    assert issue_case == pytest.approx(3.720075976020836e-44, rel=1e-6, abs=0)  # exp(-100), not 3.92e-44


def test_perplexity_of_confident_tokens_is_never_below_one() -> None:
    logits = torch.randn(2, 6, 300) * 0.3
    target = torch.randint(0, 300, (2, 6))
    logits.scatter_(2, target[..., None], 25.3)
    value = Perplexity()(logits, target).item()
    ref = math.exp(
        sum(_exact_nll(r, t) for r, t in zip(logits.reshape(-1, 300).double().tolist(), target.flatten(), strict=True))
        / 12
    )
    assert value >= 1.0
    assert value == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------- 3. pos_weight as a float
def test_a_python_float_pos_weight_is_not_rounded_to_float32() -> None:
    g = torch.Generator().manual_seed(4)
    z, y = torch.randn(50, generator=g, dtype=torch.float64), (torch.rand(50, generator=g) < 0.4).double()
    expected = F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(0.3, dtype=torch.float64)).item()
    assert binary_cross_entropy(z, y.long(), pos_weight=0.3).item() == pytest.approx(expected, rel=1e-15)
    metric = BinaryCrossEntropy(pos_weight=0.3)
    metric.update(z[:20], y[:20].long())
    metric.update(z[20:], y[20:].long())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-15)
    zz, yy = z.reshape(10, 5), y.reshape(10, 5).long()
    pos = torch.tensor([0.3, 0.7, 1.3, 0.1, 2.9], dtype=torch.float64)
    ref = F.binary_cross_entropy_with_logits(zz, yy.double(), pos_weight=pos).item()
    assert multilabel_cross_entropy(zz, yy, pos_weight=pos).item() == pytest.approx(ref, rel=1e-15)


# -------------------------------------------------------------- 4. zero weight on an infinite loss
def test_a_zero_weight_removes_an_infinite_loss_in_binary_and_multilabel() -> None:
    log_p = torch.tensor([0.0, -0.3, -1.2, -0.7], dtype=torch.float64)  # log p = 0 with target 0: loss inf
    y = torch.tensor([0, 1, 0, 1])
    s = torch.tensor([0.0, 0.3, 1.7, 0.9], dtype=torch.float64)
    p = log_p.exp()
    kept = slice(1, 4)
    expected = F.binary_cross_entropy(p[kept], y[kept].double(), weight=s[kept], reduction="sum") / s[kept].sum()
    got = binary_cross_entropy(log_p, y, sample_weight=s, input_format="log_probs")
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    metric = BinaryCrossEntropy(input_format="log_probs")
    metric.update(log_p, y, s)
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-12)
    ml = multilabel_cross_entropy(
        log_p[:, None].repeat(1, 2), y[:, None].repeat(1, 2), sample_weight=s, input_format="log_probs", average="none"
    )
    torch.testing.assert_close(ml, expected.repeat(2), rtol=1e-12, atol=0)
    forward = MultilabelCrossEntropy(2, input_format="log_probs")(
        log_p[:, None].repeat(1, 2), y[:, None].repeat(1, 2), s
    )
    assert forward.isfinite()
    assert forward.item() == pytest.approx(expected.item(), rel=1e-12)  # micro over two equal labels


# ---------------------------------------------------------------- 5. MetricCollection compute groups
_Z = torch.tensor([[0.3, -1.2, 2.1], [1.1, 0.4, -0.7], [0.2, 0.9, 0.05], [-0.6, 1.3, 0.8]])
_T = torch.tensor([0, 1, 0, 1])  # the first batch holds no class 2
_Z2, _T2 = torch.tensor([[0.5, -0.1, 1.9], [2.2, 0.3, -1.4]]), torch.tensor([2, 0])


@pytest.mark.parametrize(
    "other",
    [
        {"ignore_index": 2},
        {"weight": torch.tensor([1.0, 1.0, 0.3])},  # only class 2, absent from the first batch, differs
        {"label_smoothing": 0.1},
        {"input_format": "log_probs"},
    ],
    ids=["ignore_index", "weight", "label_smoothing", "input_format"],
)
def test_metrics_whose_updates_differ_never_share_a_compute_group(other: dict) -> None:
    collection = MetricCollection({"a": MulticlassCrossEntropy(3), "b": MulticlassCrossEntropy(3, **other)})
    zs = [_Z, _Z2] if other.get("input_format") != "log_probs" else [F.log_softmax(_Z, 1), F.log_softmax(_Z2, 1)]
    for z, t in zip(zs, [_T, _T2], strict=True):
        collection.update(z, t)
    result = collection.compute()
    z, t = torch.cat([_Z, _Z2]).double(), torch.cat([_T, _T2])
    options = {k: v.double() if isinstance(v, torch.Tensor) else v for k, v in other.items() if k != "input_format"}
    assert result["a"].item() == pytest.approx(F.cross_entropy(z, t).item(), rel=1e-6)
    assert result["b"].item() == pytest.approx(F.cross_entropy(z, t, **options).item(), rel=1e-6)
    assert len(collection.compute_groups) == 2


def test_binary_metrics_with_another_pos_weight_never_share_a_compute_group() -> None:
    collection = MetricCollection({"a": BinaryCrossEntropy(), "b": BinaryCrossEntropy(pos_weight=0.3)})
    z, y = torch.tensor([0.3, -1.2, 0.7, 2.2]), torch.tensor([0, 0, 0, 1])
    collection.update(z[:2], y[:2])  # no positive: both updates add the same sums
    collection.update(z[2:], y[2:])
    result = collection.compute()
    zd, yd = z.double(), y.double()
    assert result["a"].item() == pytest.approx(F.binary_cross_entropy_with_logits(zd, yd).item(), rel=1e-6)
    ref = F.binary_cross_entropy_with_logits(zd, yd, pos_weight=torch.tensor(0.3, dtype=torch.float64)).item()
    assert result["b"].item() == pytest.approx(ref, rel=1e-6)


def test_metrics_that_differ_only_in_average_or_ce_vs_ne_still_share() -> None:
    multiclass = MetricCollection(
        {
            "ce": MulticlassCrossEntropy(3),
            "ce_none": MulticlassCrossEntropy(3, average="none"),
            "ne": MulticlassNormalizedEntropy(3),
            "ce_macro": MulticlassCrossEntropy(3, average="macro"),
        }
    )
    multiclass.update(_Z, _T)  # micro CE keeps (3, 1) totals (issue 14): it cannot share the per-class state
    assert sorted(sorted(g) for g in multiclass.compute_groups.values()) == [["ce"], ["ce_macro", "ce_none", "ne"]]
    binary = MetricCollection(
        {"bce": BinaryCrossEntropy(pos_weight=0.3), "bne": BinaryNormalizedEntropy(pos_weight=0.3)}
    )
    binary.update(_Z[:, 0], _T.clamp(max=1))
    assert list(binary.compute_groups.values()) == [["bce", "bne"]]


# ------------------------------------------------------------- 6. one-vs-one decision functions
def test_one_vs_one_decision_functions_are_refused_naming_the_option() -> None:
    from sklearn.datasets import load_iris
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from xent_metrics.scoring import make_cross_entropy_scorer

    X, y = load_iris(return_X_y=True)
    scorer = make_cross_entropy_scorer(input_format="logits", response_method="decision_function")
    for model in (
        SVC(decision_function_shape="ovo"),
        make_pipeline(StandardScaler(), SVC(decision_function_shape="ovo")),
    ):
        with pytest.raises(ValueError, match=r"decision_function_shape='ovo'.*one margin per pair of classes"):
            scorer(model.fit(X, y), X, y)
    assert np.isfinite(scorer(SVC().fit(X, y), X, y))  # one-vs-rest: accepted
    two = y < 2
    assert np.isfinite(scorer(SVC(decision_function_shape="ovo").fit(X[two], y[two]), X[two], y[two]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_small_probabilities_of_negatives_keep_their_digits(dtype: torch.dtype) -> None:
    """-log(1 - p) as log1p(-p): 1 - p in the input dtype would round first (1.3e-5 relative at p = 1e-3 in float32)."""
    p = torch.tensor([1e-3, 1e-4, 3e-2, 1e-6], dtype=dtype)
    exact = [-math.log1p(-v) for v in p.double().tolist()]  # the given (rounded) probabilities, upcast exactly
    rtol = 2e-6 if dtype == torch.float32 else 1e-12
    got = binary_cross_entropy(p, torch.zeros(4, dtype=torch.long), input_format="probs").item()
    assert _rel(got, sum(exact) / 4) <= rtol
    per_label = multilabel_cross_entropy(
        p[None, :], torch.zeros(1, 4, dtype=torch.long), input_format="probs", average="none"
    )
    for value, ref in zip(per_label.tolist(), exact, strict=True):
        assert _rel(value, ref) <= rtol


def test_soft_per_class_values_of_a_zero_row_and_a_row_summing_to_1_7_worked_by_hand() -> None:
    """Row 1 has targets (0, 0, 0): its weight 0.3 is split equally (0.1 a class) and adds no loss. Row 2 has
    targets (0.9, 0.8, 0), summing to 1.7: its weight 1.0 is split 0.9/1.7, 0.8/1.7, 0. Log-probabilities by mpmath.
    """
    z = [[0.3, -1.2, 2.1], [1.1, 0.4, -0.7]]
    with mpmath.workdps(40):
        row = [mpmath.mpf(v) for v in z[1]]
        log_norm = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))
        nll = [float(log_norm - v) for v in row]  # -log softmax(z_2)_c
    expected = torch.tensor(
        [0.9 * nll[0] / (0.1 + 0.9 / 1.7), 0.8 * nll[1] / (0.1 + 0.8 / 1.7), 0.0], dtype=torch.float64
    )
    zt = torch.tensor(z, dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.8, 0.0]], dtype=torch.float64)
    s = torch.tensor([0.3, 1.0], dtype=torch.float64)
    got = multiclass_cross_entropy(zt, y, sample_weight=s, average="none")
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)
    micro = (0.9 * nll[0] + 0.8 * nll[1]) / 1.3  # torch's mean: over sum(s), whatever the rows sum to
    assert multiclass_cross_entropy(zt, y, sample_weight=s).item() == pytest.approx(micro, rel=1e-14)


def _exact_soft_bce(z: float, y: float, ls: float, input_format: str, eps: float) -> float:
    """mpmath: ``y' (-log p) + (1 - y') (-log(1 - p))``, ``y' = y (1 - ls) + ls / 2``, p read from the given value."""
    with mpmath.workdps(80):
        v, t, s = mpmath.mpf(z), mpmath.mpf(y), mpmath.mpf(ls)
        pos, neg = t * (1 - s) + s / 2, (1 - t) * (1 - s) + s / 2
        if input_format == "logits":
            neg_log_p, neg_log_q = mpmath.log1p(mpmath.exp(-v)), mpmath.log1p(mpmath.exp(v))
        elif input_format == "probs":
            v = min(max(v, mpmath.mpf(eps)), 1 - mpmath.mpf(eps))  # clipped as log_loss clips, in the input dtype
            neg_log_p, neg_log_q = -mpmath.log(v), -mpmath.log1p(-v)
        else:
            neg_log_p, neg_log_q = -v, -mpmath.log1p(-mpmath.exp(v))
        return float(pos * neg_log_p + neg * neg_log_q)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("input_format", ["logits", "probs", "log_probs"])
def test_smoothed_and_soft_targets_keep_their_digits(dtype: torch.dtype, input_format: str) -> None:
    # Issue 20's sweep: y' and 1 - y' were formed in the kernel dtype (and relu(z) - y z cancelled), so a smoothed or
    # soft target on a confident element lost up to every digit (float32 [300.0], ls=1e-8: 5e-131 for 1.5e-6).
    rng = np.random.default_rng(20)
    values = {
        "logits": [300.0, -300.0, 88.3, -35.7, 600.0, 0.3],
        "probs": [1 - 1e-3, 1e-3, 0.7, 0.999, 1e-6, 0.3],
        "log_probs": [-1e-3, -30.3, -0.7, -1e-7 if dtype == torch.float64 else -1e-3, -300.0, -0.3],
    }[input_format]
    preds = torch.tensor(values, dtype=dtype)
    eps = torch.finfo(dtype).eps
    bound = 1e-12 if dtype == torch.float64 else 2e-6
    soft = torch.tensor(rng.uniform(0, 1, len(values)), dtype=torch.float64)
    soft[:2] = torch.tensor([0.9963789917112563, 1 - 2.0**-30], dtype=torch.float64)
    ones, zeros = torch.ones(len(values), dtype=torch.long), torch.zeros(len(values), dtype=torch.long)
    for target, ls in [(ones, 1e-3), (ones, 1e-8), (zeros, 1e-5), (soft, 0.0), (soft, 1e-4)]:
        for i in range(len(values)):
            z = preds[i : i + 1]
            ref = _exact_soft_bce(float(z), float(target[i]), ls, input_format, eps)
            got = binary_cross_entropy(z, target[i : i + 1], input_format=input_format, label_smoothing=ls)
            assert _rel(float(got), ref) <= bound, (input_format, float(z), float(target[i]), ls, float(got), ref)
            row = target[i : i + 1][None]
            got_ml = multilabel_cross_entropy(z[None], row, input_format=input_format, label_smoothing=ls)
            assert _rel(float(got_ml), ref) <= bound, ("multilabel", input_format, float(z), float(target[i]), ls)
