"""The benchmark cases (issue 14's workloads) and the typed targets each is held to."""

from __future__ import annotations

from typing import Any

from benchmarks import peers
from benchmarks.spec import (
    Accuracy,
    Case,
    FloorFraction,
    Impl,
    Inputs,
    MiB,
    OpsAtMost,
    PeakMemory,
    Speedup,
)

MAX_OPS = 40  # issue 14: dispatched ops per update on a non-CPU device, whatever the batch size
STEP_MAX_OPS = 12  # issue 22: dispatched ops of the per-step update on a meta batch
FUSED_BLOCK = 2**23  # logits per compiled block of the fused kernel: its warm-up must reach one block


# ------------------------------------------------------------------------------ multiclass CE, logits
def _ce_inputs(n: int, c: int) -> Any:
    def make(device: str) -> Inputs:
        import torch

        g = torch.Generator().manual_seed(0)
        logits = (torch.randn(n, c, generator=g) * 2).to(device)
        target = torch.randint(0, c, (n,), generator=g).to(device)
        return {"preds": logits, "target": target, "device": device}

    return make


def _ce_check(x: Inputs, out: dict[str, Any]) -> dict[str, float]:
    """Relative error of each mean against F.cross_entropy in float64."""
    import torch.nn.functional as F

    ref = F.cross_entropy(x["preds"].double(), x["target"]).item()
    facts = {}
    for name, value in out.items():
        if name.startswith("ours: multiclass_cross_entropy"):
            facts[f"rel_err[{name}]"] = abs(float(value) - ref) / ref
        elif name == "F.cross_entropy":
            facts["rel_err[F.cross_entropy]"] = abs(float(value) / x["preds"].shape[0] - ref) / ref
    return facts


def ce_case(n: int, c: int) -> Case:
    eager, fused = "ours: multiclass_cross_entropy, eager", "ours: multiclass_cross_entropy, fused"
    update = "ours: MulticlassCrossEntropy.update (validate_args=False)"
    peer = "F.cross_entropy"
    return Case(
        name=f"ce_{n}x{c}",
        title=f"multiclass CE, float32 logits ({n}, {c}), class indices",
        make=_ce_inputs(n, c),
        impls=[
            Impl(eager, True, peers.ours_multiclass(), meta=True),
            Impl(fused, True, peers.ours_multiclass(fused=True), warm_rows=FUSED_BLOCK // c + 1, full_only=True),
            Impl(update, True, peers.metric_update("MulticlassCrossEntropy", False, num_classes=c), meta=True),
            Impl(
                "ours: MulticlassCrossEntropy.update (validate_args=True)",
                True,
                peers.metric_update("MulticlassCrossEntropy", True, num_classes=c),
                full_only=True,
            ),
            Impl(peer, False, peers.f_cross_entropy),
            Impl("torchmetrics.MeanMetric fed F.cross_entropy", False, peers.mean_metric_ce, full_only=True),
            Impl("ignite Loss(F.cross_entropy)", False, peers.ignite_loss_ce, full_only=True),
        ],
        peer=peer,
        input_bytes=lambda x: x["preds"].numel() * x["preds"].element_size(),
        floor_work=lambda x: (x["preds"].numel(), 0, x["preds"].numel() * 4 + x["target"].numel() * 8),
        targets=[
            Speedup("eager >= 3x F.cross_entropy(sum)", eager, peer, 3.0),
            Speedup("fused >= 3x F.cross_entropy(sum)", fused, peer, 3.0),
            FloorFraction("eager >= 0.5 of the floor", eager, 0.5),
            PeakMemory("eager peak extra <= max(8 MiB, 2% of logits)", eager, max(8 * MiB, 0.02 * n * c * 4)),
            Accuracy("eager rel. error <= F.cross_entropy's", f"rel_err[{eager}]", than="rel_err[F.cross_entropy]"),
            OpsAtMost(f"eager <= {MAX_OPS} ops on a meta batch", eager, MAX_OPS),
            OpsAtMost(f"update() <= {MAX_OPS} ops on a meta batch", update, MAX_OPS),
        ],
        check=_ce_check,
    )


# ----------------------------------------------------------------------------- multilabel BCE, logits
def _bce_inputs(n: int, k: int) -> Any:
    def make(device: str) -> Inputs:
        import torch

        g = torch.Generator().manual_seed(1)
        logits = (torch.randn(n, k, generator=g) * 3).to(device)
        labels = torch.rand(n, k, generator=g) < 0.3
        return {"preds": logits, "target": labels.float().to(device), "device": device}

    return make


def _bce_check(x: Inputs, out: dict[str, Any]) -> dict[str, float]:
    """Largest relative error of the per-label means against F.binary_cross_entropy_with_logits in float64."""
    import torch
    import torch.nn.functional as F

    ref = F.binary_cross_entropy_with_logits(x["preds"].double(), x["target"].double(), reduction="none").mean(0)
    facts = {}
    for name, value in out.items():
        if not isinstance(value, torch.Tensor) or name.startswith("ours: Multilabel"):  # update returns None
            continue
        got = value.double() if name.startswith("ours") else value.double() / x["preds"].shape[0]
        facts[f"max_rel_err[{name}]"] = ((got - ref).abs() / ref.abs()).max().item()
    return facts


def bce_case(n: int, k: int) -> Case:
    ours, peer = "ours: multilabel_cross_entropy(average='none')", "F.binary_cross_entropy_with_logits(none).sum(0)"
    update = "ours: MultilabelCrossEntropy.update (validate_args=False)"
    return Case(
        name=f"bce_{n}x{k}",
        title=f"multilabel per-label BCE, float32 logits ({n}, {k})",
        make=_bce_inputs(n, k),
        impls=[
            Impl(ours, True, peers.ours_multilabel, meta=True),
            Impl(update, True, peers.metric_update("MultilabelCrossEntropy", False, num_labels=k), meta=True),
            Impl(peer, False, peers.f_bce),
            Impl("torcheval BinaryNormalizedEntropy(num_tasks=K)", False, peers.torcheval_ne, None, full_only=True),
        ],
        peer=peer,
        input_bytes=lambda x: x["preds"].numel() * 4,
        floor_work=lambda x: (x["preds"].numel(), x["preds"].numel(), x["preds"].numel() * 8),
        targets=[
            Speedup(">= 2.5x F.bce_with_logits(none).sum(0)", ours, peer, 2.5),
            FloorFraction(">= 0.3 of the floor", ours, 0.3),
            PeakMemory("peak extra <= 5% of logits", ours, 0.05 * n * k * 4),
            Accuracy("rel. error <= the peer's", f"max_rel_err[{ours}]", than=f"max_rel_err[{peer}]"),
            OpsAtMost(f"<= {MAX_OPS} ops on a meta batch", ours, MAX_OPS),
            OpsAtMost(f"update() <= {MAX_OPS} ops on a meta batch", update, MAX_OPS),
        ],
        check=_bce_check,
    )


# ---------------------------------------------------------------- probabilities: the scikit-learn path
def _probs_inputs(n: int, c: int) -> Any:
    def make(device: str) -> Inputs:
        import numpy as np
        import torch

        rng = np.random.default_rng(2)
        scores = rng.standard_normal((n, c)) * 2
        scores -= scores.max(1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(1, keepdims=True)
        labels = rng.integers(0, c, n)
        preds, target = torch.from_numpy(probs), torch.from_numpy(labels)
        return {"probs": probs, "labels": labels, "X": np.zeros((n, 1)), "preds": preds, "target": target,
                "device": device}  # fmt: skip

    return make


def _probs_check(x: Inputs, out: dict[str, Any]) -> dict[str, float]:
    """Relative difference of each loss (the scorers: minus it) to scikit-learn's log_loss."""
    ref = float(out["sklearn log_loss"])
    ours = {k: abs(float(v)) for k, v in out.items() if k.startswith("ours") and v is not None}
    return {f"rel_diff_to_log_loss[{k}]": abs(v - ref) / ref for k, v in ours.items()}


def probs_case(n: int, c: int) -> Case:
    loss, scorer, peer = "ours: scoring.cross_entropy_loss", "ours: make_cross_entropy_scorer()", "sklearn log_loss"
    checked_probs = peers.ours_multiclass(input_format="probs", validate_args=True)
    return Case(
        name=f"probs_{n}x{c}",
        title=f"probabilities (scikit-learn path), float64 ({n}, {c}), value checks on",
        make=_probs_inputs(n, c),
        impls=[
            Impl(loss, True, peers.ours_loss),
            Impl(scorer, True, peers.ours_scorer),
            Impl("ours: multiclass_cross_entropy(probs)", True, checked_probs),
            Impl(peer, False, peers.sklearn_log_loss, torch_ops=False),
            Impl("sklearn neg_log_loss scorer", False, peers.sklearn_neg_log_loss, None, True, torch_ops=False),
        ],
        peer=peer,
        input_bytes=lambda x: x["probs"].nbytes,
        floor_work=lambda x: (0, 0, x["probs"].nbytes),
        targets=[
            Speedup("cross_entropy_loss >= 20x log_loss", loss, peer, 20.0),
            Speedup("scorer >= 20x log_loss", scorer, peer, 20.0),
            Accuracy("cross_entropy_loss == log_loss to 1e-12", f"rel_diff_to_log_loss[{loss}]", limit=1e-12),
            Accuracy("scorer == -log_loss to 1e-12", f"rel_diff_to_log_loss[{scorer}]", limit=1e-12),
            PeakMemory("cross_entropy_loss peak extra <= 5% of input", loss, 0.05 * n * c * 8),
        ],
        check=_probs_check,
        cpu_only=True,
    )


# --------------------------------------------------------------------------------- per-step overhead
def _step_inputs(device: str) -> Inputs:
    import torch

    g = torch.Generator().manual_seed(3)
    preds, target = torch.randn(256, 10, generator=g), torch.randint(0, 10, (256,), generator=g)
    return {"preds": preds.to(device), "target": target.to(device), "device": device}


def step_case() -> Case:
    update, forward = "ours: update (validate_args=False)", "ours: forward (validate_args=False)"
    peer = "ignite Loss(F.cross_entropy).update"
    return Case(
        name="step_256x10",
        title="per-step overhead, (256, 10) float32 logits, MulticlassCrossEntropy",
        make=_step_inputs,
        impls=[
            Impl(update, True, peers.metric_update("MulticlassCrossEntropy", False, num_classes=10), meta=True),
            Impl(forward, True, peers.metric_forward("MulticlassCrossEntropy", False, num_classes=10)),
            Impl(
                "ours: update (validate_args=True)",
                True,
                peers.metric_update("MulticlassCrossEntropy", True, num_classes=10),
                full_only=True,
            ),
            Impl(peer, False, peers.ignite_loss_ce),
            Impl("torchmetrics.MeanMetric fed F.cross_entropy", False, peers.mean_metric_ce),
        ],
        peer=peer,
        input_bytes=lambda x: x["preds"].numel() * 4,
        floor_work=lambda x: (x["preds"].numel(), 0, x["preds"].numel() * 4),
        targets=[
            Speedup("update() <= 1.0x ignite Loss.update", update, peer, 1.0),
            Speedup("forward() <= 1.5x update()", forward, update, 1 / 1.5),
            OpsAtMost(f"update() <= {STEP_MAX_OPS} ops on a meta batch", update, STEP_MAX_OPS),
        ],
        per_call=True,
    )


def all_cases(quick: bool) -> list[Case]:
    """Every case; ``quick`` drops the implementations marked ``full_only``."""
    from benchmarks.lm_case import linear_cases

    cases = [ce_case(65536, 1000), ce_case(4096, 32000), bce_case(262144, 100), probs_case(200000, 100), step_case()]
    cases.extend(linear_cases())
    if quick:
        for case in cases:
            case.impls = [impl for impl in case.impls if not impl.full_only]
    return cases
