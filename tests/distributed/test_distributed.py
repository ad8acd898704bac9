"""Real torch.distributed (gloo, 127.0.0.1) runs of the Metric classes: 2 and 3 processes, one spawn each.

Per run and per metric configuration, the ranks get uneven shards of the same batches (one rank
gets nothing, one rank only a batch whose targets are all ignored). Checked: the result is the same
on every rank and equals the single-process functional result on all the data to 1e-12 relative;
``compute()`` costs exactly one collective (an ``all_reduce``), where torchmetrics' default sync of
the same state costs a barrier and two all-gathers; a cached ``compute()`` costs none; a metric
with no data anywhere gives ``nan`` (per class with ``average="none"``) and one warning on every
rank; ``dist_sync_on_step=True`` forward returns the batch value over all ranks; a rejected update on
one rank changes nothing; bits per byte with bytes given per update (per sequence, per rank) are exact.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.distributed as dist
from helpers import cases
from helpers.dist import WorkerError, run_in_processes
from torchmetrics import MeanMetric, Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from xent_metrics import (
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    Perplexity,
)
from xent_metrics.functional import (
    binary_normalized_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
SIZES = [7, 6, 0, 11, 3, 9]  # batch 1 (6 rows) has every target ignored
ALL_IGNORED = 1
COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "reduce",
    "reduce_scatter",
    "gather",
    "scatter",
)


# ------------------------------------------------------------------------------------------- the data
def _batches(kind: str, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    n = sum(SIZES)
    k, positions = {"multiclass": (5, ()), "multilabel": (3, ()), "binary": (1, ()), "lm": (7, (4,))}[kind]
    z, y = cases.batch(kind, n, k, positions, generator=g, dtype=torch.float64)
    if kind == "lm":  # language model: (n, L, V) logits with a few extreme values, (n, L) token ids
        z[torch.rand(z.shape, generator=g) < 0.03] = 80.0
    y[torch.rand(y.shape, generator=g) < 0.2] = -100
    w = torch.rand(n, generator=g, dtype=torch.float64) * 2
    out, start = [], 0
    for i, size in enumerate(SIZES):
        rows = slice(start, start + size)
        target = torch.full_like(y[rows], -100) if i == ALL_IGNORED else y[rows]
        out.append((z[rows], target, w[rows]))
        start += size
    return out


def _perplexity(p: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return torch.exp(multiclass_cross_entropy(p.movedim(-1, 1), t, ignore_index=-100, sample_weight=w))


# name -> (data kind, seed, metric factory, functional twin on all the data)
CASES: dict[str, tuple[str, int, Callable[..., Metric], Callable[..., torch.Tensor]]] = {
    "multiclass-ce": (
        "multiclass",
        1,
        functools.partial(cases.make, "MulticlassCrossEntropy", 5, ignore_index=-100),
        lambda p, t, w: multiclass_cross_entropy(p, t, ignore_index=-100, sample_weight=w),
    ),
    "multiclass-ne-none": (
        "multiclass",
        2,
        functools.partial(cases.make, "MulticlassNormalizedEntropy", 5, ignore_index=-100, average="none"),
        lambda p, t, w: multiclass_normalized_entropy(p, t, ignore_index=-100, sample_weight=w, average="none"),
    ),
    "multilabel-ce-none": (
        "multilabel",
        3,
        functools.partial(cases.make, "MultilabelCrossEntropy", 3, ignore_index=-100, average="none"),
        lambda p, t, w: multilabel_cross_entropy(p, t, ignore_index=-100, sample_weight=w, average="none"),
    ),
    "binary-ne": (
        "binary",
        4,
        functools.partial(cases.make, "BinaryNormalizedEntropy", ignore_index=-100),
        lambda p, t, w: binary_normalized_entropy(p, t, ignore_index=-100, sample_weight=w),
    ),
    "perplexity": ("lm", 5, functools.partial(cases.make, "Perplexity", ignore_index=-100), _perplexity),
}


def _shard(rank: int, world_size: int) -> list[int]:
    """Uneven batch indices per rank: the last rank gets nothing; rank 1 only the all-ignored batch."""
    if world_size == 2:
        owners = [1, 1, 0, 0, 1, 1]  # rank 0: the empty batch and one more
    else:
        owners = [0, 1, 0, 0, 0, 0]  # rank 1: only the all-ignored batch; rank 2: nothing at all
    return [i for i, owner in enumerate(owners) if owner == rank]


def _concat(batches: list[Batch]) -> Batch:
    return tuple(torch.cat([b[i] for b in batches]) for i in range(3))  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- the worker side
@contextlib.contextmanager
def _count_collectives() -> Iterator[Counter]:
    """Count every torch.distributed collective called (by name) inside the block."""
    counts: Counter = Counter()
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def counting(name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(dist, name, counting(name, fn))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)


class _ThreeStates(Metric):
    """The same sums kept as three (K,) states, synced the torchmetrics way (for the count only)."""

    full_state_update = False

    def __init__(self, num: int) -> None:
        super().__init__()
        for name in ("loss", "weight", "target"):
            self.add_state(name, torch.zeros(num, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self) -> None:
        pass

    def compute(self) -> torch.Tensor:
        return self.loss.sum() / self.weight.sum()


def _compute_recorded(metric: Metric) -> tuple[torch.Tensor, dict[str, int], list[str]]:
    with warnings.catch_warnings(record=True) as caught, _count_collectives() as counts:
        warnings.simplefilter("always")
        value = metric.compute()
    return value, dict(counts), [str(w.message) for w in caught]


def _check_case(name: str, rank: int, world_size: int) -> dict[str, Any]:
    kind, seed, make, _ = CASES[name]
    batches = _batches(kind, seed)
    metric = make()
    for i in _shard(rank, world_size):
        metric.update(*batches[i])
    if rank == 0:  # a rejected update on one rank must change nothing anywhere
        preds, target, weight = batches[0]
        with contextlib.suppress(ValueError):
            metric.update(preds, target, -weight)
    local = metric.sums.clone()
    value, counts, messages = _compute_recorded(metric)
    cached_value, cached_counts, _ = _compute_recorded(metric)
    assert torch.equal(metric.sums, local), "compute must restore the local state"
    metric.sync()  # the packed sync, by hand
    synced_sums = metric.sums.clone()
    metric.unsync()
    # torchmetrics' default sync of the very same state, for comparison
    with _count_collectives() as default_counts:
        metric.sync(dist_sync_fn=functools.partial(gather_all_tensors))
    default_sums = metric.sums.clone()
    metric.unsync()
    assert torch.equal(metric.sums, local)
    return {
        "value": value,
        "cached_equal": torch.equal(cached_value, value),
        "counts": counts,
        "cached_counts": cached_counts,
        "messages": messages,
        "default_counts": dict(default_counts),
        "synced_sums": synced_sums,
        "default_sums": default_sums,
    }


def _check_forward_sync_on_step(name: str, rank: int, world_size: int) -> dict[str, Any]:
    """``dist_sync_on_step=True``: forward returns the value of the step's batches over all ranks."""
    kind, seed, make, _ = CASES[name]
    batches = [b for b in _batches(kind, seed) if b[0].shape[0]][:world_size]
    metric = make(dist_sync_on_step=True)
    step_value = metric(*batches[rank])
    return {"step_value": step_value, "sums_after_step": metric.sums.clone()}


def _hidden_batches() -> tuple[list[Batch], torch.Tensor, torch.Tensor]:
    """The ``lm`` batches as hidden states ``(n, 4, 3)`` of a linear head ``(7, 3)`` with bias."""
    g = torch.Generator().manual_seed(6)
    head = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    hidden = [(torch.randn(*t.shape, 3, generator=g, dtype=torch.float64) * 2, t, w) for _, t, w in _batches("lm", 6)]
    return hidden, *head


def _sequence_bytes() -> list[torch.Tensor]:
    """One UTF-8 byte count per sequence of each ``lm`` batch (0 to 40, a (0,) tensor for an empty batch)."""
    counts = torch.randint(0, 41, (sum(SIZES),), generator=torch.Generator().manual_seed(7))
    return list(counts.split(SIZES))


def _check_hidden_path(rank: int, world_size: int) -> dict[str, Any]:
    """Perplexity (also in bits per byte, bytes per update) and MulticlassCrossEntropy fed hidden states on uneven
    shards; on rank 0 an update with a negative byte count is refused and changes nothing."""
    batches, weight, bias = _hidden_batches()
    metrics = {
        "ppl": Perplexity(ignore_index=-100),
        "ce": MulticlassCrossEntropy(7, ignore_index=-100),
        "bpb": Perplexity(ignore_index=-100, units="bits_per_byte"),
    }
    nbytes = _sequence_bytes()
    for i in _shard(rank, world_size):
        hidden, target, w = batches[i]
        for name, metric in metrics.items():
            extra = {"num_bytes": nbytes[i]} if name == "bpb" else {}
            metric.update(hidden, target, w, linear_weight=weight, linear_bias=bias, **extra)
    if rank == 0:
        hidden, target, w = batches[0]
        with contextlib.suppress(ValueError):
            metrics["bpb"].update(hidden, target, w, linear_weight=weight, linear_bias=bias, num_bytes=-nbytes[0] - 1)
    return {name: _compute_recorded(metric)[:2] for name, metric in metrics.items()}


def _worker(rank: int, world_size: int) -> dict[str, Any]:
    out: dict[str, Any] = {name: _check_case(name, rank, world_size) for name in CASES}
    out["hidden"] = _check_hidden_path(rank, world_size)
    out["forward"] = {
        name: _check_forward_sync_on_step(name, rank, world_size) for name in ("multiclass-ce", "perplexity")
    }
    out["empty"] = _compute_recorded(MulticlassCrossEntropy(5))
    out["empty_none"] = _compute_recorded(MultilabelCrossEntropy(3, average="none"))
    out["empty_macro"] = _compute_recorded(MulticlassNormalizedEntropy(5, average="macro"))
    three = _ThreeStates(5)
    three.update()
    with _count_collectives() as counts:
        three.compute()
    out["three_states_counts"] = dict(counts)
    mean = MeanMetric()
    mean.update(torch.tensor(float(rank)))
    with _count_collectives() as counts:
        mean.compute()
    out["mean_metric_counts"] = dict(counts)
    return out


# ----------------------------------------------------------------------------------- the parent side
def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=0.0, equal_nan=True)


@pytest.mark.distributed
@pytest.mark.parametrize("world_size", [2, 3])
def test_metrics_in_gloo_processes(world_size: int) -> None:
    results = run_in_processes(_worker, world_size, timeout=240)
    for name, (kind, seed, _, functional) in CASES.items():
        batches = _batches(kind, seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expected = functional(*_concat(batches))
        expected_messages = [str(w.message) for w in caught]
        first = results[0][name]
        for rank, result in enumerate(results):
            got = result[name]
            assert torch.equal(got["value"], first["value"]), f"{name}: rank {rank} differs from rank 0"
            _close(got["value"], expected)
            assert got["counts"] == {"all_reduce": 1}, (name, got["counts"])
            assert got["cached_counts"] == {}
            assert got["cached_equal"]
            assert got["messages"] == expected_messages
            # torchmetrics' generic sync of the same state agrees, at a higher price
            torch.testing.assert_close(got["default_sums"], got["synced_sums"], rtol=1e-12, atol=0.0)
            assert sum(got["default_counts"].values()) >= 2, got["default_counts"]

    for name in ("multiclass-ce", "perplexity"):
        kind, seed, _, functional = CASES[name]
        step = [b for b in _batches(kind, seed) if b[0].shape[0]][:world_size]
        expected = functional(*_concat(step))
        for rank, result in enumerate(results):
            _close(result["forward"][name]["step_value"], expected)
            local = CASES[name][2]()
            local.update(*step[rank])
            assert torch.equal(result["forward"][name]["sums_after_step"], local.sums)  # the state stays local

    batches, weight, bias = _hidden_batches()  # the hidden-state path: F.cross_entropy(F.linear(...)) on all data
    hidden, target, w = _concat(batches)
    loss = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(hidden, weight, bias).reshape(-1, 7), target.reshape(-1), reduction="none"
    )
    keep, w = target.reshape(-1) != -100, w[:, None].expand(target.shape).reshape(-1)
    ce = (loss * w)[keep].sum() / w[keep].sum()
    bits_per_byte = (loss * w)[keep].sum() / math.log(2) / torch.cat(_sequence_bytes()).sum()
    for result in results:
        for name, expected in (("ppl", torch.exp(ce)), ("ce", ce), ("bpb", bits_per_byte)):
            value, counts = result["hidden"][name]
            _close(value, expected)
            assert counts == {"all_reduce": 1}, (name, counts)

    for result in results:  # for comparison: torchmetrics' default on three separate (K,) states and on MeanMetric
        assert sum(result["three_states_counts"].values()) >= 6, result["three_states_counts"]
        assert sum(result["mean_metric_counts"].values()) >= 2, result["mean_metric_counts"]

    for key, shape in (("empty", ()), ("empty_none", (3,)), ("empty_macro", ())):  # no data anywhere: every rank
        for value, counts, messages in (r[key] for r in results):
            assert value.shape == shape and torch.isnan(value).all(), (key, value)
            assert counts == {"all_reduce": 1}, (key, counts)
            assert len(messages) == 1, (key, messages)
            assert "No samples with non-zero weight" in messages[0]


# --------------------------------------------------------------------------------- the helper itself
def _failing_or_hanging(rank: int, world_size: int, mode: str, pid_dir: str) -> int:
    with open(os.path.join(pid_dir, f"{rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
    if mode == "raise" and rank == 1:
        raise ValueError(f"boom on rank {rank}")
    if mode == "hang":
        time.sleep(600)
    dist.barrier()
    return rank


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.distributed
def test_helper_reports_worker_errors_and_kills_hanging_workers(tmp_path: Any) -> None:
    with pytest.raises(WorkerError, match=r"(?s)rank 1 of 2:.*ValueError: boom on rank 1"):
        run_in_processes(_failing_or_hanging, 2, timeout=60, mode="raise", pid_dir=str(tmp_path))
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] of 2 returned nothing within 3 s"):
        run_in_processes(_failing_or_hanging, 2, timeout=3, mode="hang", pid_dir=str(tmp_path))
    assert time.monotonic() - start < 30
    pids = [int((tmp_path / f"{rank}.pid").read_text()) for rank in range(2)]
    deadline = time.monotonic() + 5  # the forkserver reaps its children asynchronously
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
