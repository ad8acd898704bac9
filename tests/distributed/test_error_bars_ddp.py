"""Error bars in 2 and 3 gloo processes equal one process: value to 1e-12, stderr to 1e-9, one collective.

PairedDifference too: its state is summed by the same single ``all_reduce``."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from helpers.dist import run_in_processes

import xent_metrics
from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity

SIZES = [3, 0, 4, 2, 5, 1, 3]  # sequences per batch, one empty
LENGTH, VOCAB = 5, 6


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(23)
    out = []
    for size in SIZES:
        effect = torch.randn(size, 1, VOCAB, generator=g, dtype=torch.float64)
        out.append({
            "logits": torch.randn(size, LENGTH, VOCAB, generator=g, dtype=torch.float64) + effect,
            "tokens": torch.randint(0, VOCAB, (size, LENGTH), generator=g),
            "bytes": torch.randint(3, 30, (size,), generator=g),
            "docs": torch.randint(0, 2, (size,), generator=g),
            "labels": torch.randint(0, 2, (size, 3), generator=g),
        })
    return out


def _metrics() -> dict[str, Any]:
    return {
        "ppl_docs": Perplexity(error_bars=True),
        "bpb": Perplexity(units="bits_per_byte", error_bars=True),
        "ce_none": MulticlassCrossEntropy(VOCAB, average="none", error_bars=True),
        "multilabel": MultilabelCrossEntropy(3, error_bars=True),
        "binary": BinaryCrossEntropy(error_bars=True),
        "paired": xent_metrics.PairedDifference(Perplexity()),
    }


def _feed(metrics: dict[str, Any], batch: dict[str, torch.Tensor]) -> None:
    logits, tokens = batch["logits"], batch["tokens"]
    metrics["ppl_docs"].update(logits, tokens, cluster_ids=batch["docs"])
    metrics["bpb"].update(logits, tokens, num_bytes=batch["bytes"])
    metrics["ce_none"].update(logits.movedim(-1, 1), tokens)
    metrics["multilabel"].update(logits[:, 0, :3], batch["labels"])
    metrics["binary"].update(logits[:, 0, 0], batch["labels"][:, 0])
    metrics["paired"].update(logits, logits.flip(-1), tokens, cluster_ids=batch["docs"])


@contextlib.contextmanager
def _count_collectives() -> Iterator[Counter]:
    counts: Counter = Counter()
    names = ("all_reduce", "all_gather", "all_gather_object", "broadcast", "barrier")
    saved = {name: getattr(torch.distributed, name) for name in names}

    def counting(name: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in saved.items():
        setattr(torch.distributed, name, counting(name, fn))
    try:
        yield counts
    finally:
        for name, fn in saved.items():
            setattr(torch.distributed, name, fn)


def _worker(rank: int, world_size: int) -> dict[str, Any]:
    """Uneven shards; with 3 processes the last rank has no data."""
    metrics = _metrics()
    feeding = max(world_size - 1, 1) if world_size == 3 else world_size
    for i, batch in enumerate(_batches()):
        if i % feeding == rank:
            _feed(metrics, batch)
    out = {}
    for name, metric in metrics.items():
        with _count_collectives() as counts:
            interval = metric.compute_interval(0.9)
        out[name] = {"interval": interval, "counts": dict(counts), "local_rows": metric.sums.shape[0]}
    return out


@pytest.mark.distributed
@pytest.mark.parametrize("world_size", [2, 3])
def test_error_bars_in_gloo_processes(world_size: int) -> None:
    results = run_in_processes(_worker, world_size, timeout=240)
    single = _metrics()
    for batch in _batches():
        _feed(single, batch)
    for name, metric in single.items():
        expected = metric.compute_interval(0.9)
        for rank, result in enumerate(results):
            got = result[name]
            assert got["counts"] == {"all_reduce": 1}, (name, rank, got["counts"])
            for key in ("value", "low", "high"):
                rtol = 1e-12 if key == "value" else 1e-9
                torch.testing.assert_close(got["interval"][key], expected[key], rtol=rtol, atol=0.0, msg=(name, key))
            torch.testing.assert_close(got["interval"]["stderr"], expected["stderr"], rtol=1e-9, atol=0.0)
            assert torch.all(expected["stderr"] > 0), name
