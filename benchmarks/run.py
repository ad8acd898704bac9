"""Benchmark xent-metrics against its peers: time, peak extra memory and fraction of the machine's floor.

Usage::

    python benchmarks/run.py            # every case, ~10 minutes on 2 CPU cores
    python benchmarks/run.py --quick    # fewer repeats, no torch.compile case: < 2 minutes
    python benchmarks/run.py --only ce_65536x1000 --repeats 9

Each case runs its implementations interleaved (ours, then every peer, repeated) in one fresh child
process and reports medians; peak extra memory is measured per implementation in another fresh child
process: the RSS high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) while the call
runs, minus the RSS before it (the inputs); on CUDA ``torch.cuda.max_memory_allocated`` minus the
inputs. The floor of a case is the larger of its ``exp`` (and ``log1p``) count times the measured
per-element cost and its input bytes over the measured read bandwidth; "floor" in the table is
floor time / measured time. The table is printed and written to ``benchmarks/results/*.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Impl:
    name: str
    ours: bool
    build: Callable[[dict], Callable[[], Any]]  # inputs -> zero-argument call
    warm: Callable[[dict], dict] | None = None  # inputs -> small inputs for the memory child's warm-up
    full_only: bool = False  # left out of --quick


@dataclass
class Case:
    name: str
    title: str
    make: Callable[[str], dict]  # device -> inputs
    impls: list[Impl]
    input_bytes: Callable[[dict], int]
    floor_work: Callable[[dict], tuple[int, int, int]]  # (exp count, log1p count, bytes read)
    targets: list[dict] = field(default_factory=list)
    check: Callable[[dict, dict], dict] | None = None  # inputs, outputs -> accuracy facts
    per_call: bool = False  # tiny per-step cases: time many calls, no memory column
    cpu_only: bool = False


def _torch() -> Any:
    import torch

    return torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        _torch().cuda.synchronize()


# -- multiclass CE from logits ----------------------------------------------------------------------
def _ce_inputs(n: int, c: int) -> Callable[[str], dict]:
    def make(device: str) -> dict:
        torch = _torch()
        g = torch.Generator().manual_seed(0)
        logits = (torch.randn(n, c, generator=g) * 2).to(device)
        target = torch.randint(0, c, (n,), generator=g).to(device)
        return {"preds": logits, "target": target, "device": device}

    return make


def _ours_update(**options: Any) -> Callable[[dict], Callable[[], Any]]:
    def build(x: dict) -> Callable[[], Any]:
        from xent_metrics.functional._softmax_ce import softmax_ce_sums

        torch = _torch()

        def call() -> Any:
            with torch.no_grad():
                return softmax_ce_sums(
                    x["preds"],
                    x["target"],
                    input_format="logits",
                    class_weight=None,
                    sample_weight=None,
                    ignore_index=None,
                    label_smoothing=0.0,
                    **options,
                )

        return call

    return build


def _metric_update(cls_name: str, validate: bool, **kwargs: Any) -> Callable[[dict], Callable[[], Any]]:
    def build(x: dict) -> Callable[[], Any]:
        import xent_metrics.metrics as metrics

        metric = getattr(metrics, cls_name)(validate_args=validate, **kwargs).to(x["device"])
        return lambda: metric.update(x["preds"], x["target"])

    return build


def _f_cross_entropy(x: dict) -> Callable[[], Any]:
    F = _torch().nn.functional
    return lambda: F.cross_entropy(x["preds"], x["target"], reduction="sum")


def _mean_metric_ce(x: dict) -> Callable[[], Any]:
    import torchmetrics

    F = _torch().nn.functional
    metric = torchmetrics.MeanMetric().to(x["device"])
    return lambda: metric.update(F.cross_entropy(x["preds"], x["target"]), weight=x["preds"].shape[0])


def _ignite_loss_ce(x: dict) -> Callable[[], Any]:
    from ignite.metrics import Loss

    F = _torch().nn.functional
    metric = Loss(F.cross_entropy, device=x["device"])
    return lambda: metric.update((x["preds"], x["target"]))


def _ce_check(x: dict, out: dict) -> dict:
    """Relative error of our sum and of F.cross_entropy's against a float64 reference."""
    F = _torch().nn.functional
    ref = F.cross_entropy(x["preds"].double(), x["target"], reduction="sum").item()
    facts = {"reference": ref}
    for name, value in out.items():
        if name.startswith("ours") and value is not None and getattr(value, "ndim", 1) == 2:
            facts[f"rel_err[{name}]"] = abs(value[0].sum().item() - ref) / abs(ref)
        elif name == "F.cross_entropy":
            facts["rel_err[F.cross_entropy]"] = abs(value.double().item() - ref) / abs(ref)
    return facts


def _head(rows: int) -> Callable[[dict], dict]:
    """Inputs -> their first ``rows`` rows (every array or tensor), for warm-up calls."""
    return lambda x: {k: v[:rows] if hasattr(v, "shape") else v for k, v in x.items()}


def _ce_case(n: int, c: int, fused: bool) -> Case:
    impls = [
        Impl("ours: core, eager", True, _ours_update(), _head(2)),
        Impl(
            "ours: MulticlassCrossEntropy.update (validate_args=False)",
            True,
            _metric_update("MulticlassCrossEntropy", False, num_classes=c),
            _head(2),
        ),
        Impl(
            "ours: MulticlassCrossEntropy.update (validate_args=True)",
            True,
            _metric_update("MulticlassCrossEntropy", True, num_classes=c),
            _head(2),
            full_only=True,
        ),
    ]
    if fused:
        from xent_metrics.functional._fused import fused_step

        impls.insert(
            1,
            Impl(
                "ours: core, fused (torch.compile)",
                True,
                _ours_update(fused=True),
                _head(fused_step(c, None)),
            ),
        )
    impls += [
        Impl("F.cross_entropy", False, _f_cross_entropy, _head(2)),
        Impl("torchmetrics.MeanMetric fed F.cross_entropy", False, _mean_metric_ce, _head(2), full_only=True),
        Impl("ignite Loss(F.cross_entropy)", False, _ignite_loss_ce, _head(2), full_only=True),
    ]
    limit = max(8 * MiB, 0.02 * n * c * 4)
    targets = [
        {
            "what": "eager >= 2.5x F.cross_entropy",
            "impl": "ours: core, eager",
            "peer": "F.cross_entropy",
            "speedup": 2.5,
        },
        {"what": "peak extra <= max(8 MiB, 2% of logits)", "impl": "ours: core, eager", "memory": limit},
        {
            "what": "metric update (no checks) >= 2.5x F.cross_entropy",
            "impl": "ours: MulticlassCrossEntropy.update (validate_args=False)",
            "peer": "F.cross_entropy",
            "speedup": 2.5,
        },
        {
            "what": "rel. error <= F.cross_entropy's",
            "accuracy": ("rel_err[ours: core, eager]", "rel_err[F.cross_entropy]"),
        },
    ]
    if fused:
        targets.insert(
            2,
            {
                "what": "fused >= 3.3x F.cross_entropy",
                "impl": "ours: core, fused (torch.compile)",
                "peer": "F.cross_entropy",
                "speedup": 3.3,
            },
        )
    return Case(
        name=f"ce_{n}x{c}",
        title=f"multiclass CE, float32 logits ({n}, {c})",
        make=_ce_inputs(n, c),
        impls=impls,
        input_bytes=lambda x: x["preds"].numel() * x["preds"].element_size(),
        floor_work=lambda x: (x["preds"].numel(), 0, x["preds"].numel() * 4 + x["target"].numel() * 8),
        targets=targets,
        check=_ce_check,
    )


# -- multilabel BCE from logits ---------------------------------------------------------------------
def _bce_inputs(n: int, k: int) -> Callable[[str], dict]:
    def make(device: str) -> dict:
        torch = _torch()
        g = torch.Generator().manual_seed(1)
        logits = (torch.randn(n, k, generator=g) * 3).to(device)
        labels = torch.rand(n, k, generator=g) < 0.3
        return {
            "preds": logits,
            "target": labels.float().to(device),
            "target_int": labels.long().to(device),
            "device": device,
        }

    return make


def _ours_bce(target_key: str) -> Callable[[dict], Callable[[], Any]]:
    def build(x: dict) -> Callable[[], Any]:
        from xent_metrics.functional._bce import bce_sums

        torch = _torch()

        def call() -> Any:
            with torch.no_grad():
                return bce_sums(
                    x["preds"],
                    x[target_key],
                    input_format="logits",
                    sample_weight=None,
                    pos_weight=None,
                    ignore_index=None,
                    label_smoothing=0.0,
                )

        return call

    return build


def _f_bce(x: dict) -> Callable[[], Any]:
    F = _torch().nn.functional
    return lambda: F.binary_cross_entropy_with_logits(x["preds"], x["target"], reduction="none").sum(0)


def _torcheval_ne(x: dict) -> Callable[[], Any]:
    from torcheval.metrics import BinaryNormalizedEntropy

    # torcheval wants (num_tasks, n): the transposed copies are made here, outside the timed call.
    logits_t, target_t = x["preds"].T.contiguous(), x["target"].T.contiguous()
    metric = BinaryNormalizedEntropy(from_logits=True, num_tasks=x["preds"].shape[1], device=x["device"])
    return lambda: metric.update(logits_t, target_t)


def _bce_check(x: dict, out: dict) -> dict:
    torch = _torch()
    F = torch.nn.functional
    ref = F.binary_cross_entropy_with_logits(x["preds"].double(), x["target"].double(), reduction="none").sum(0)
    facts = {}
    for name, value in out.items():
        if not isinstance(value, torch.Tensor):  # torcheval's update returns the metric
            continue
        got = value[0] if name.startswith("ours") else value.double()
        facts[f"max_rel_err[{name}]"] = ((got - ref).abs() / ref.abs()).max().item()
    return facts


def _bce_case(n: int, k: int) -> Case:
    small = _head(2)
    impls = [
        Impl("ours: core, float targets", True, _ours_bce("target"), small),
        Impl("ours: core, int64 targets", True, _ours_bce("target_int"), small, full_only=True),
        Impl(
            "ours: MultilabelCrossEntropy.update (validate_args=False)",
            True,
            _metric_update("MultilabelCrossEntropy", False, num_labels=k),
            small,
            full_only=True,
        ),
        Impl("F.binary_cross_entropy_with_logits(none).sum(0)", False, _f_bce, small),
        Impl("torcheval BinaryNormalizedEntropy(num_tasks=K)", False, _torcheval_ne, None, full_only=True),
    ]
    return Case(
        name=f"bce_{n}x{k}",
        title=f"multilabel per-label BCE sums, float32 logits ({n}, {k})",
        make=_bce_inputs(n, k),
        impls=impls,
        input_bytes=lambda x: x["preds"].numel() * 4,
        floor_work=lambda x: (x["preds"].numel(), x["preds"].numel(), x["preds"].numel() * 8),
        targets=[
            {
                "what": ">= 2.5x F.bce_with_logits(none).sum(0)",
                "impl": "ours: core, float targets",
                "peer": "F.binary_cross_entropy_with_logits(none).sum(0)",
                "speedup": 2.5,
            },
            {"what": "peak extra <= 5% of logits", "impl": "ours: core, float targets", "memory": 0.05 * n * k * 4},
        ],
        check=_bce_check,
    )


# -- probabilities, the scikit-learn path -----------------------------------------------------------
def _probs_inputs(n: int, c: int) -> Callable[[str], dict]:
    def make(device: str) -> dict:
        import numpy as np

        rng = np.random.default_rng(2)
        scores = rng.standard_normal((n, c)) * 2
        scores -= scores.max(1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(1, keepdims=True)
        labels = rng.integers(0, c, n)
        torch = _torch()
        return {
            "probs": probs,
            "labels": labels,
            "preds": torch.from_numpy(probs),
            "target": torch.from_numpy(labels),
            "device": device,
        }

    return make


def _ours_probs(x: dict) -> Callable[[], Any]:
    from xent_metrics.functional import multiclass_cross_entropy

    return lambda: multiclass_cross_entropy(x["preds"], x["target"], input_format="probs")


def _ours_probs_core(x: dict) -> Callable[[], Any]:
    from xent_metrics.functional.multiclass import _multiclass_update

    return lambda: _multiclass_update(x["preds"], x["target"], input_format="probs")


def _ours_scorer(x: dict) -> Callable[[], Any]:
    from xent_metrics.scoring import cross_entropy_loss

    return lambda: cross_entropy_loss(x["labels"], x["probs"], labels=list(range(x["probs"].shape[1])))


def _sklearn_log_loss(x: dict) -> Callable[[], Any]:
    from sklearn.metrics import log_loss

    return lambda: log_loss(x["labels"], x["probs"], labels=list(range(x["probs"].shape[1])))


def _probs_check(x: dict, out: dict) -> dict:
    ref = float(out["sklearn log_loss"])
    values = {k: v for k, v in out.items() if k.startswith("ours") and v is not None and getattr(v, "ndim", 0) == 0}
    return {f"rel_diff_to_sklearn[{k}]": abs(float(v) - ref) / ref for k, v in values.items()}


def _probs_case(n: int, c: int) -> Case:
    small = _head(2)
    return Case(
        name=f"probs_{n}x{c}",
        title=f"probabilities (scikit-learn path), float64 ({n}, {c}), validation on",
        make=_probs_inputs(n, c),
        impls=[
            Impl("ours: multiclass_cross_entropy(probs)", True, _ours_probs, small),
            Impl("ours: scoring.cross_entropy_loss", True, _ours_scorer, small),
            Impl(
                "ours: MulticlassCrossEntropy(probs).update (validate_args=True)",
                True,
                _metric_update("MulticlassCrossEntropy", True, num_classes=c, input_format="probs"),
                small,
                full_only=True,
            ),
            Impl("ours: core only (_multiclass_update, no checks)", True, _ours_probs_core, small),
            Impl("sklearn log_loss", False, _sklearn_log_loss, small),
        ],
        input_bytes=lambda x: x["probs"].nbytes,
        floor_work=lambda x: (0, 0, x["probs"].nbytes),
        targets=[
            {
                "what": ">= 20x sklearn log_loss",
                "impl": "ours: multiclass_cross_entropy(probs)",
                "peer": "sklearn log_loss",
                "speedup": 20,
            },
            {
                "what": "peak extra <= 5% of input",
                "impl": "ours: multiclass_cross_entropy(probs)",
                "memory": 0.05 * n * c * 8,
            },
            {
                "what": "same value as log_loss to 1e-12",
                "accuracy_max": ("rel_diff_to_sklearn[ours: multiclass_cross_entropy(probs)]", 1e-12),
            },
        ],
        check=_probs_check,
        cpu_only=True,
    )


# -- per-step overhead ------------------------------------------------------------------------------
def _step_inputs(device: str) -> dict:
    torch = _torch()
    g = torch.Generator().manual_seed(3)
    return {
        "preds": torch.randn(256, 10, generator=g).to(device),
        "target": torch.randint(0, 10, (256,), generator=g).to(device),
        "device": device,
    }


def _metric_forward(validate: bool) -> Callable[[dict], Callable[[], Any]]:
    def build(x: dict) -> Callable[[], Any]:
        import xent_metrics.metrics as metrics

        metric = metrics.MulticlassCrossEntropy(num_classes=10, validate_args=validate).to(x["device"])
        return lambda: metric(x["preds"], x["target"])

    return build


def _step_case() -> Case:
    return Case(
        name="step_256x10",
        title="per-step overhead, (256, 10) float32 logits",
        make=_step_inputs,
        impls=[
            Impl(
                "ours: update (validate_args=False)",
                True,
                _metric_update("MulticlassCrossEntropy", False, num_classes=10),
            ),
            Impl(
                "ours: update (validate_args=True)",
                True,
                _metric_update("MulticlassCrossEntropy", True, num_classes=10),
                full_only=True,
            ),
            Impl("ours: forward (validate_args=False)", True, _metric_forward(False)),
            Impl("ignite Loss(F.cross_entropy).update", False, _ignite_loss_ce),
            Impl("torchmetrics.MeanMetric fed F.cross_entropy", False, _mean_metric_ce),
        ],
        input_bytes=lambda x: x["preds"].numel() * 4,
        floor_work=lambda x: (x["preds"].numel(), 0, x["preds"].numel() * 4),
        targets=[
            {
                "what": "update <= 1.1x ignite Loss.update",
                "impl": "ours: update (validate_args=False)",
                "peer": "ignite Loss(F.cross_entropy).update",
                "speedup": 1 / 1.1,
            },
            {
                "what": "update (validate_args=True) <= 1.1x ignite Loss.update",
                "impl": "ours: update (validate_args=True)",
                "peer": "ignite Loss(F.cross_entropy).update",
                "speedup": 1 / 1.1,
            },
            {
                "what": "forward <= 2x update",
                "impl": "ours: forward (validate_args=False)",
                "peer": "ours: update (validate_args=False)",
                "speedup": 0.5,
            },
        ],
        per_call=True,
    )


def all_cases(quick: bool) -> list[Case]:
    cases = [
        _ce_case(65536, 1000, fused=not quick),
        _ce_case(4096, 32000, fused=not quick),
        _bce_case(262144, 100),
        _probs_case(200000, 100),
        _step_case(),
    ]
    if quick:
        for case in cases:
            case.impls = [impl for impl in case.impls if not impl.full_only]
    return cases


def _memory_impls(case: Case, quick: bool) -> list[Impl]:
    """Every implementation; with --quick only those a memory target names and the first peer."""
    if not quick:
        return case.impls
    named = {t["impl"] for t in case.targets if "memory" in t}
    first_peer = next((i.name for i in case.impls if not i.ours), None)
    return [i for i in case.impls if i.name in named or i.name == first_peer]


# ------------------------------------------------------------------------------------- measurements
def measure_floor(device: str) -> dict:
    """Per-element ``exp`` and ``log1p`` cost on cache-resident data and the read bandwidth (all threads)."""
    torch = _torch()
    x = torch.rand(1 << 18, device=device) * 4 - 2
    out = torch.empty_like(x)
    big = torch.rand(1 << 26, device=device)  # 256 MiB

    def rate(fn: Callable[[], Any], reps: int, numel: int) -> float:
        fn()
        _sync(device)
        best = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            best.append((time.perf_counter() - start) / (reps * numel))
        return statistics.median(best)

    exp_s = rate(lambda: torch.exp(x, out=out), 200, x.numel())
    log1p_s = rate(lambda: torch.log1p(x.abs_(), out=out), 100, x.numel())
    read_s = rate(lambda: big.sum(), 3, big.numel() * 4)
    return {
        "exp_ns": exp_s * 1e9,
        "log1p_ns": log1p_s * 1e9,
        "read_GBps": 1 / read_s / 1e9,
        "threads": torch.get_num_threads(),
    }


def _time_case(case: Case, device: str, repeats: int) -> dict:
    """Interleaved medians (seconds) of every implementation, plus the first result of each for checks."""
    x = case.make(device)
    calls, outputs, errors, first = {}, {}, {}, {}
    for impl in case.impls:
        try:
            calls[impl.name] = impl.build(x)
            start = time.perf_counter()
            outputs[impl.name] = calls[impl.name]()  # warm-up (compiles the fused kernel)
            _sync(device)
            first[impl.name] = time.perf_counter() - start
        except Exception as error:  # a missing optional peer is reported, not fatal
            errors[impl.name] = f"{type(error).__name__}: {error}"[:300]
            calls.pop(impl.name, None)
    inner = 200 if case.per_call else 1
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                call()
            _sync(device)
            times[name].append((time.perf_counter() - start) / inner)
    facts = {}
    if case.check is not None:
        try:
            facts = case.check(x, {k: v for k, v in outputs.items() if k in calls})
        except Exception as error:
            facts = {"check_error": f"{type(error).__name__}: {error}"}
    return {
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "all_s": times,
        "first_call_s": first,
        "errors": errors,
        "facts": facts,
        "floor_work": case.floor_work(x),
        "input_bytes": case.input_bytes(x),
    }


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _memory_impl(case: Case, impl: Impl, device: str) -> dict:
    """Peak extra memory of one call on fresh data: RSS high-water (CPU) or the allocator's peak (CUDA)."""
    torch = _torch()
    x = case.make(device)
    if impl.warm is not None:  # load code paths (and compile) on a tiny slice, not on the measured data
        impl.build(impl.warm(x))()
    call = impl.build(x)
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return {"peak_extra_bytes": torch.cuda.max_memory_allocated() - base, "how": "cuda max_memory_allocated"}
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kib("VmRSS")
    call()
    peak = _status_kib("VmHWM")
    return {"peak_extra_bytes": max(0, peak - base) * 1024, "how": "VmHWM - VmRSS before the call"}


def _child(kind: str, case_name: str, impl_name: str, device: str, repeats: int, quick: bool) -> None:
    if kind == "floor":
        print("RESULT " + json.dumps(measure_floor(device)))
        return
    case = next(c for c in all_cases(quick) if c.name == case_name)
    if kind == "time":
        result = _time_case(case, device, repeats)
    else:
        result = _memory_impl(case, next(i for i in case.impls if i.name == impl_name), device)
    print("RESULT " + json.dumps(result, default=float))


def _run_child(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]}


# --------------------------------------------------------------------------------- distributed case
def _dist_rank(rank: int, port: int, num_labels: int, iters: int, queue: Any) -> None:
    import torch
    import torch.distributed as dist
    from torchmetrics import Metric

    from xent_metrics.functional._sums import cross_entropy_from_sums, new_sums
    from xent_metrics.functional.multiclass import _multiclass_update
    from xent_metrics.metrics import MulticlassCrossEntropy

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
    )

    class DefaultSync(Metric):  # the same (3, K) float64 sum state, torchmetrics' default sync
        full_state_update = False

        def __init__(self) -> None:
            super().__init__()
            self.add_state("sums", new_sums(num_labels), dist_reduce_fx="sum")

        def update(self, sums: torch.Tensor) -> None:
            self.sums += sums

        def compute(self) -> torch.Tensor:
            return cross_entropy_from_sums(self.sums)

    counts: dict[str, int] = {}
    for name in ("all_reduce", "all_gather", "barrier", "broadcast", "all_gather_object", "all_gather_into_tensor"):
        original = getattr(dist, name)

        def counted(*a: Any, _original: Any = original, _name: str = name, **k: Any) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*a, **k)

        setattr(dist, name, counted)
    g = torch.Generator().manual_seed(rank)
    preds, target = torch.randn(64, num_labels, generator=g), torch.randint(0, num_labels, (64,), generator=g)
    batch = _multiclass_update(preds, target)
    ours = MulticlassCrossEntropy(num_classes=num_labels, validate_args=False)
    peer = DefaultSync()
    feeds = {
        "ours": (ours, lambda: ours.update(preds, target)),
        "torchmetrics default sync": (peer, lambda: peer.update(batch)),
    }
    times: dict[str, list[float]] = {label: [] for label in feeds}
    collectives: dict[str, int] = {}
    values: dict[str, float] = {}
    for _ in range(iters):  # interleaved: both see the same machine state
        for label, (metric, feed) in feeds.items():
            feed()  # invalidates the cached result, so compute() syncs again
            dist.barrier()
            counts.clear()
            start = time.perf_counter()
            values[label] = float(metric.compute())
            times[label].append(time.perf_counter() - start)
            collectives[label] = sum(counts.values())
    result = {
        label: {
            "median_s": statistics.median(times[label][1:]),
            "collectives_per_compute": collectives[label],
            "value": values[label],
        }
        for label in feeds
    }
    bare = []
    for _ in range(iters):  # the collective alone: what one sync cannot go below
        state = ours.sums.clone()
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(state)
        bare.append(time.perf_counter() - start)
    result["bare all_reduce of the (3, K) state"] = {
        "median_s": statistics.median(bare[1:]),
        "collectives_per_compute": 1,
        "value": float("nan"),
    }
    if rank == 0:
        queue.put(result)
    dist.barrier()
    dist.destroy_process_group()


def run_distributed(num_labels: int, iters: int, timeout: float) -> dict:
    import multiprocessing as mp
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_dist_rank, args=(r, port, num_labels, iters, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    return result


# ------------------------------------------------------------------------------------------ report
def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def _floor_seconds(work: tuple[int, int, int], floor: dict) -> float:
    exps, logs, nbytes = work
    return max((exps * floor["exp_ns"] + logs * floor["log1p_ns"]) * 1e-9, nbytes / (floor["read_GBps"] * 1e9))


def _verdicts(case: Case, timing: dict, memory: dict) -> list[dict]:
    med, facts, out = timing.get("median_s", {}), timing.get("facts", {}), []
    for target in case.targets:
        verdict = {"case": case.name, "target": target["what"]}
        if "speedup" in target:
            ours, peer = med.get(target["impl"]), med.get(target["peer"])
            ratio = None if not ours or not peer else peer / ours
            verdict.update(
                measured=ratio, speedup=target["speedup"], holds=ratio is not None and ratio >= target["speedup"]
            )
        elif "memory" in target:
            got = memory.get(target["impl"], {}).get("peak_extra_bytes")
            verdict.update(measured=got, limit=target["memory"], holds=got is not None and got <= target["memory"])
        elif "accuracy" in target:
            ours, peer = (facts.get(k) for k in target["accuracy"])
            verdict.update(measured=(ours, peer), holds=ours is not None and peer is not None and ours <= peer)
        elif "accuracy_max" in target:
            key, limit = target["accuracy_max"]
            got = facts.get(key)
            verdict.update(measured=got, holds=got is not None and got <= limit)
        out.append(verdict)
    return out


def _table(results: dict) -> str:
    floor = results["floor"]
    lines = [
        f"machine: {results['machine']['cpu']}, {floor['threads']} threads, torch {results['machine']['torch']}; "
        f"floor: exp {floor['exp_ns']:.3f} ns, log1p {floor['log1p_ns']:.3f} ns, read {floor['read_GBps']:.1f} GB/s; "
        f"load avg before {results['machine']['load_before']}",
        "",
        "| case | implementation | median | vs peers (peer time / this time) | peak extra memory | floor |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        timing, memory = case["timing"], case["memory"]
        med = timing.get("median_s", {})
        peers = [i for i in case["impls"] if not i["ours"] and i["name"] in med]
        floor_s = _floor_seconds(timing["floor_work"], floor) if "floor_work" in timing else None
        for impl in case["impls"]:
            t = med.get(impl["name"])
            if t is None:
                err = timing.get("errors", {}).get(impl["name"], timing.get("error", "not run"))
                lines.append(f"| {name} | {impl['name']} | skipped: {err} | | | |")
                continue
            vs = (
                ", ".join(f"{p['name'].split(' ')[0]} {med[p['name']] / t:.2f}x" for p in peers) if impl["ours"] else ""
            )
            mem = memory.get(impl["name"], {})
            if "peak_extra_bytes" in mem:
                pct = 100 * mem["peak_extra_bytes"] / max(1, timing["input_bytes"])
                mem_s = f"{mem['peak_extra_bytes'] / MiB:.1f} MiB ({pct:.1f}% of input)"
            else:
                mem_s = "-" if not mem else f"error: {str(mem.get('error'))[:60]}"
            fl = f"{floor_s / t:.2f}" if floor_s and not case["per_call"] else "-"
            lines.append(f"| {name} | {impl['name']} | {_fmt_time(t)} | {vs} | {mem_s} | {fl} |")
    dist = results.get("distributed")
    if dist:
        if "error" in dist:
            lines.append(f"| dist_K1000 | 2 gloo ranks | skipped: {dist['error']} | | | |")
        else:
            peer = dist["torchmetrics default sync"]
            for label, res in dist.items():
                vs = f"default-sync {peer['median_s'] / res['median_s']:.2f}x" if label == "ours" else ""
                if label.startswith("bare"):
                    lines.append(f"| dist_K1000 | {label} | {_fmt_time(res['median_s'])} | | - | - |")
                    continue
                lines.append(
                    f"| dist_K1000 | {label}: compute() ({res['collectives_per_compute']} collectives) | "
                    f"{_fmt_time(res['median_s'])} | {vs} | - | - |"
                )
    lines += ["", "| target | measured | holds |", "|---|---|---|"]
    for v in results["verdicts"]:
        m = v.get("measured")
        if isinstance(m, float) and "speedup" in v:
            m = f"{m:.2f}x (needs >= {v['speedup']:.2f}x; peer time / ours)"
        elif isinstance(m, float) and "limit" not in v:
            m = f"{m:.3g}"
        elif "limit" in v and m is not None:
            m = f"{m / MiB:.1f} MiB (limit {v['limit'] / MiB:.1f} MiB)"
        elif isinstance(m, tuple | list):
            m = " vs ".join("-" if x is None else f"{x:.2e}" for x in m)
        holds = "not measured" if v.get("measured") is None else ("yes" if v["holds"] else "NO")
        lines.append(f"| {v['case']}: {v['target']} | {'-' if m is None else m} | {holds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no torch.compile case, short distributed run")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default 7)")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-implementation memory children")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: benchmarks/results/<time>.json)")
    parser.add_argument(
        "--child", nargs=6, metavar=("KIND", "CASE", "IMPL", "DEVICE", "REPEATS", "QUICK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, case, impl, device, repeats, quick = args.child
        _child(kind, case, impl, device, int(repeats), quick == "1")
        return
    torch = _torch()
    repeats = args.repeats or (3 if args.quick else 7)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    quick = "1" if args.quick else "0"
    started = time.perf_counter()
    for device in devices:
        results: dict = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "device": device,
                "quick": args.quick,
                "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
            },
            "cases": {},
            "verdicts": [],
        }
        try:
            results["machine"]["cpu"] = next(
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            )
        except (OSError, StopIteration):
            pass
        results["floor"] = _run_child(["floor", "-", "-", device, "1", quick], 300)
        for case in all_cases(args.quick):
            if (args.only and case.name not in args.only) or (case.cpu_only and device != "cpu"):
                continue
            print(f"[{time.perf_counter() - started:6.1f} s] {device} {case.name} ...", file=sys.stderr, flush=True)
            timing = _run_child(["time", case.name, "-", device, str(repeats), quick], 900)
            memory = {}
            if not args.no_memory and not case.per_call:
                for impl in _memory_impls(case, args.quick):
                    if impl.name in timing.get("median_s", {}):
                        memory[impl.name] = _run_child(["memory", case.name, impl.name, device, "1", quick], 600)
            results["cases"][case.name] = {
                "title": case.title,
                "timing": timing,
                "memory": memory,
                "per_call": case.per_call,
                "impls": [{"name": i.name, "ours": i.ours} for i in case.impls],
            }
            results["verdicts"] += _verdicts(case, timing, memory)
        if device == "cpu" and (not args.only or "dist_K1000" in args.only):
            print(f"[{time.perf_counter() - started:6.1f} s] distributed ...", file=sys.stderr, flush=True)
            dist = run_distributed(1000, 20 if args.quick else 100, 300)
            results["distributed"] = dist
            if "error" not in dist:
                ours, peer = dist["ours"], dist["torchmetrics default sync"]
                ratio = peer["median_s"] / ours["median_s"]
                results["verdicts"] += [
                    {
                        "case": "dist_K1000",
                        "target": "compute() >= 3x faster than default sync",
                        "measured": ratio,
                        "speedup": 3.0,
                        "holds": ratio >= 3,
                    },
                    {
                        "case": "dist_K1000",
                        "target": "one collective per compute()",
                        "measured": float(ours["collectives_per_compute"]),
                        "holds": ours["collectives_per_compute"] == 1,
                    },
                ]
        results["machine"]["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        results["wall_s"] = time.perf_counter() - started
        table = _table(results)
        results["table"] = table
        out = args.out or HERE / "results" / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{device}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=float))
        print(table)
        print(f"\nwritten to {out} in {results['wall_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
