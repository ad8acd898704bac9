"""Long-run stability (issue 12): many small updates of each Metric class; RSS growth and time drift.

Each class runs in a fresh child process with one thread: ``validate_args=False``, batches of 8
samples cycled from 16 prepared ones. After a warm-up (1% of the updates, at most 1000), the run is
cut into tenths and each tenth into 20 blocks. After each block, a second instance of the class,
``reset()`` first, is timed on a quarter block: the control, which tells how fast the (shared,
noisy) machine is at that moment. A tenth's figure is the median over its blocks of (long-lived
time / control time); the drift is last tenth / first tenth of that figure, so a change of the
machine's load cancels and what remains is what 10**6 accumulated updates cost. The raw times per
update are recorded too. Targets: RSS growth (the largest RSS at the end of a tenth minus the RSS
after the warm-up) at most 2 MiB; the drift within 10%.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.spec import MiB

BATCH, BATCHES, BLOCKS = 8, 16, 20
RSS_LIMIT, DRIFT_LIMIT = 2 * MiB, 0.10


def _batches(kind: str) -> list[tuple[Any, Any]]:
    import torch

    g = torch.Generator().manual_seed(4)
    shapes = {"binary": ((BATCH,), (BATCH,)), "multiclass": ((BATCH, 10), (BATCH,)),
              "multilabel": ((BATCH, 5), (BATCH, 5)), "tokens": ((1, BATCH, 10), (1, BATCH))}  # fmt: skip
    preds_shape, target_shape = shapes[kind]
    out = []
    for _ in range(BATCHES):
        preds = torch.randn(preds_shape, generator=g) * 2
        if kind in ("binary", "multilabel"):
            target = (torch.rand(target_shape, generator=g) < 0.3).float()
        else:
            target = torch.randint(0, 10, target_shape, generator=g)
        out.append((preds, target))
    return out


def _classes() -> dict[str, tuple[Callable[[], Any], str]]:
    import xent_metrics.metrics as m

    return {
        "BinaryCrossEntropy": (lambda: m.BinaryCrossEntropy(validate_args=False), "binary"),
        "BinaryNormalizedEntropy": (lambda: m.BinaryNormalizedEntropy(validate_args=False), "binary"),
        "MulticlassCrossEntropy": (lambda: m.MulticlassCrossEntropy(10, validate_args=False), "multiclass"),
        "MulticlassNormalizedEntropy": (lambda: m.MulticlassNormalizedEntropy(10, validate_args=False), "multiclass"),
        "MultilabelCrossEntropy": (lambda: m.MultilabelCrossEntropy(5, validate_args=False), "multilabel"),
        "MultilabelNormalizedEntropy": (lambda: m.MultilabelNormalizedEntropy(5, validate_args=False), "multilabel"),
        "Perplexity": (lambda: m.Perplexity(validate_args=False), "tokens"),
    }


def class_names() -> tuple[str, ...]:
    """The Metric classes measured, in the order of :func:`_classes` (one a class the package exports)."""
    return tuple(_classes())


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not in /proc/self/status")


def _timed(metric: Any, batches: list[tuple[Any, Any]], count: int, first: int) -> float:
    """Seconds per update over ``count`` updates fed from ``batches[first:]`` (cycled)."""
    start = time.perf_counter()
    for i in range(first, first + count):
        metric.update(*batches[i % BATCHES])
    return (time.perf_counter() - start) / count


def long_run(name: str, updates: int) -> dict[str, Any]:
    """``updates`` updates of the class ``name``; per-tenth time per update (raw and over a fresh control), RSS."""
    factory, kind = _classes()[name]
    metric, control, batches = factory(), factory(), _batches(kind)
    _timed(metric, batches, min(1000, max(BATCHES, updates // 100)), 0)
    gc.collect()
    rss_start = _rss_bytes()
    block = max(1, updates // (10 * BLOCKS))
    per_tenth, over_control, rss = [], [], []
    for tenth in range(10):
        times, ratios = [], []
        for b in range(BLOCKS):
            times.append(_timed(metric, batches, block, (tenth * BLOCKS + b) * block))
            control.reset()  # a fresh metric, timed right after: how fast the machine is just now
            ratios.append(times[-1] / _timed(control, batches, max(1, block // 4), 0))
        per_tenth.append(statistics.median(times))
        over_control.append(statistics.median(ratios))
        rss.append(_rss_bytes())
    growth = max(rss) - rss_start
    drift = over_control[-1] / over_control[0]
    return {
        "updates": 10 * BLOCKS * block,
        "per_update_s_by_tenth": per_tenth,
        "over_fresh_control_by_tenth": over_control,
        "rss_bytes_by_tenth": rss,
        "rss_start_bytes": rss_start,
        "rss_growth_bytes": growth,
        "last_over_first_raw": per_tenth[-1] / per_tenth[0],
        "last_over_first": drift,
        "holds_rss": growth <= RSS_LIMIT,
        "holds_time": abs(drift - 1) <= DRIFT_LIMIT,
        "value": float(metric.compute()),
    }


def long_run_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of the long-run results, one row per class."""
    lines = [
        "| class | updates | time/update, first tenth | last tenth | raw last/first | last/first over a fresh control "
        "(within 10%) | RSS growth (<= 2 MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | | |")
            continue
        first, last = r["per_update_s_by_tenth"][0], r["per_update_s_by_tenth"][-1]
        lines.append(
            f"| {name} | {r['updates']:,} | {first * 1e6:.1f} us | {last * 1e6:.1f} us | "
            f"{r['last_over_first_raw']:.2f} | "
            f"{r['last_over_first']:.3f} ({'yes' if r['holds_time'] else 'NO'}) | "
            f"{r['rss_growth_bytes'] / MiB:+.2f} MiB ({'yes' if r['holds_rss'] else 'NO'}) |"
        )
    return "\n".join(lines)
