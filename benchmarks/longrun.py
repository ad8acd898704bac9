"""Long-run stability (issue 12): many small updates of each Metric class; RSS growth and time drift.

Each class runs in a fresh child process with one thread: ``validate_args=False``, batches of 8
samples cycled from 16 prepared ones. After a warm-up (1% of the updates, at most 1000), the run is
cut into tenths and each tenth into 20 blocks; a tenth's time per update is the median of its
blocks (a transient stall of the shared machine moves one block, not the tenth). Targets: RSS growth
(the largest RSS at the end of a tenth minus the RSS after the warm-up) at most 2 MiB, and the last
tenth's time per update within 10% of the first's.
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


CLASS_NAMES = (
    "BinaryCrossEntropy",
    "BinaryNormalizedEntropy",
    "MulticlassCrossEntropy",
    "MulticlassNormalizedEntropy",
    "MultilabelCrossEntropy",
    "MultilabelNormalizedEntropy",
    "Perplexity",
)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not in /proc/self/status")


def long_run(name: str, updates: int) -> dict[str, Any]:
    """``updates`` updates of the class ``name``; per-tenth time per update and RSS, and the verdicts."""
    factory, kind = _classes()[name]
    metric, batches = factory(), _batches(kind)
    for i in range(min(1000, max(BATCHES, updates // 100))):
        metric.update(*batches[i % BATCHES])
    gc.collect()
    rss_start = _rss_bytes()
    block = max(1, updates // (10 * BLOCKS))
    per_tenth, rss = [], []
    step = 0
    for _ in range(10):
        blocks = []
        for _ in range(BLOCKS):
            start = time.perf_counter()
            for _ in range(block):
                metric.update(*batches[step % BATCHES])
                step += 1
            blocks.append((time.perf_counter() - start) / block)
        per_tenth.append(statistics.median(blocks))
        rss.append(_rss_bytes())
    growth = max(rss) - rss_start
    drift = per_tenth[-1] / per_tenth[0] - 1
    return {
        "updates": step,
        "per_update_s_by_tenth": per_tenth,
        "rss_bytes_by_tenth": rss,
        "rss_start_bytes": rss_start,
        "rss_growth_bytes": growth,
        "last_over_first": per_tenth[-1] / per_tenth[0],
        "holds_rss": growth <= RSS_LIMIT,
        "holds_time": abs(drift) <= DRIFT_LIMIT,
        "value": float(metric.compute()),
    }


def long_run_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of the long-run results, one row per class."""
    lines = [
        "| class | updates | time/update, first tenth | last tenth | last/first (within 10%) | RSS growth (<= 2 MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | |")
            continue
        first, last = r["per_update_s_by_tenth"][0], r["per_update_s_by_tenth"][-1]
        lines.append(
            f"| {name} | {r['updates']:,} | {first * 1e6:.1f} us | {last * 1e6:.1f} us | "
            f"{r['last_over_first']:.3f} ({'yes' if r['holds_time'] else 'NO'}) | "
            f"{r['rss_growth_bytes'] / MiB:+.2f} MiB ({'yes' if r['holds_rss'] else 'NO'}) |"
        )
    return "\n".join(lines)
