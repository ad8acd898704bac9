"""Distributed ``compute()`` on 2 gloo processes: ours, torchmetrics' default sync, a bare ``all_reduce``.

The method (issue 14 item 5): the three are timed in ONE loop, each right after a barrier, on both
ranks, in an order rotated every iteration. A rank's time holds its wait for the other rank to reach
the collective; the rank that arrives last waits for nobody, so the faster rank's time of an
iteration is the op's own cost, and the ratios are medians of per-iteration ratios (each pair
measured under the same load). The earlier method timed the bare ``all_reduce`` in a loop of its own
after the others, on rank 0 only, and divided medians from the two phases; that figure is still
recorded ("bare, separate loop") so the two methods can be compared within one run.
"""

from __future__ import annotations

import datetime
import statistics
import time
from typing import Any

CLASSES, ROWS = 1000, 64
LABELS = ("ours", "torchmetrics default sync", "bare all_reduce")
COLLECTIVES = ("all_reduce", "all_gather", "barrier", "broadcast", "all_gather_object", "all_gather_into_tensor")


def _count_collectives(dist: Any, counts: dict[str, int]) -> None:
    for name in COLLECTIVES:
        original = getattr(dist, name)

        def counted(*a: Any, _original: Any = original, _name: str = name, **k: Any) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*a, **k)

        setattr(dist, name, counted)


def _default_sync_peer(states: dict[str, Any]) -> Any:
    """A ``torchmetrics.Metric`` with the same tensor states as ours, synced by torchmetrics' default."""
    from torchmetrics import Metric

    class DefaultSync(Metric):
        full_state_update = False

        def __init__(self) -> None:
            super().__init__()
            for name, value in states.items():
                self.add_state(name, value.clone().zero_(), dist_reduce_fx="sum")

        def update(self, increments: dict[str, Any]) -> None:
            for name, value in increments.items():
                getattr(self, name).add_(value)

        def compute(self) -> Any:
            first = getattr(self, next(iter(states)))
            return first[0].sum() / first[1].sum()

    return DefaultSync()


def _bare(states: dict[str, Any]) -> tuple[Any, Any]:
    """(copy the state, all_reduce the copy): the collective alone, what one sync cannot go below."""
    import torch.distributed as dist

    copies: list[Any] = []

    def prepare() -> None:
        copies[:] = [s.clone() for s in states.values()]

    def op() -> None:
        for s in copies:
            dist.all_reduce(s)

    return prepare, op


def _timed_ops(preds: Any, target: Any) -> dict[str, tuple[Any, Any]]:
    """label -> (prepare, op): ``prepare`` invalidates the cached value (or copies the state), ``op`` is timed."""
    from xent_metrics.metrics import MulticlassCrossEntropy

    ours = MulticlassCrossEntropy(num_classes=CLASSES, validate_args=False)
    ours.update(preds, target)
    states = {k: v.clone() for k, v in ours.metric_state.items()}
    peer = _default_sync_peer(states)
    return {
        "ours": (lambda: ours.update(preds, target), lambda: float(ours.compute())),
        "torchmetrics default sync": (lambda: peer.update(states), lambda: float(peer.compute())),
        "bare all_reduce": _bare(states),
    }


def _rank(rank: int, port: int, iters: int, queue: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
    )
    counts: dict[str, int] = {}
    _count_collectives(dist, counts)
    g = torch.Generator().manual_seed(rank)
    preds, target = torch.randn(ROWS, CLASSES, generator=g), torch.randint(0, CLASSES, (ROWS,), generator=g)
    ops = _timed_ops(preds, target)
    times: dict[str, list[float]] = {label: [] for label in LABELS}
    collectives: dict[str, int] = {}
    for i in range(iters):
        for label in LABELS[i % 3 :] + LABELS[: i % 3]:  # rotated: no label always follows the same one
            prepare, op = ops[label]
            prepare()
            dist.barrier()
            counts.clear()
            start = time.perf_counter()
            op()
            times[label].append(time.perf_counter() - start)
            collectives[label] = sum(counts.values())
    separate = []
    for _ in range(iters):  # the earlier method: the bare collective alone, in a loop of its own
        ops["bare all_reduce"][0]()
        dist.barrier()
        start = time.perf_counter()
        ops["bare all_reduce"][1]()
        separate.append(time.perf_counter() - start)
    gathered: list[Any] = [None, None]
    dist.all_gather_object(gathered, {"times": times, "separate": separate})
    if rank == 0:
        queue.put(_summary(gathered, collectives))
    dist.barrier()
    dist.destroy_process_group()


def _summary(per_rank: list[dict[str, Any]], collectives: dict[str, int]) -> dict[str, Any]:
    """Per iteration the faster rank's time (the op's own cost, see the module doc); medians, paired ratios."""
    iters = range(1, len(per_rank[0]["times"]["ours"]))  # the first iteration dropped
    fast = {label: [min(r["times"][label][i] for r in per_rank) for i in iters] for label in LABELS}
    slow = {label: [max(r["times"][label][i] for r in per_rank) for i in iters] for label in LABELS}

    def paired(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    out: dict[str, Any] = {
        label: {"median_s": statistics.median(t), "collectives_per_compute": collectives[label]}
        for label, t in fast.items()
    }
    for label in ("ours", "torchmetrics default sync"):
        out[label]["over_bare_paired"] = paired(fast[label], fast["bare all_reduce"])
        out[label]["over_bare_paired_slower_rank"] = paired(slow[label], slow["bare all_reduce"])
    out["ours"]["default_sync_over_ours_paired"] = paired(fast["torchmetrics default sync"], fast["ours"])
    separate = statistics.median(per_rank[0]["separate"][1:])
    ours_rank0 = statistics.median(per_rank[0]["times"]["ours"][1:])
    out["bare, separate loop (rank 0; earlier method)"] = {
        "median_s": separate,
        "ours_over_it_earlier_method": ours_rank0 / separate,
    }
    return out


def run_distributed(iters: int, timeout: float) -> dict[str, Any]:
    """Spawn the 2 gloo ranks on 127.0.0.1 and return rank 0's summary (or ``{"error": ...}``)."""
    import multiprocessing as mp
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, iters, queue)) for r in range(2)]
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
