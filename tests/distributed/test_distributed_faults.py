"""A rank that raises in ``update`` while the others call ``compute()``: a bounded, readable failure, no hang.

One spawn of 2 gloo processes (``helpers.dist``) plays two faults on a ``MulticlassCrossEntropy``:

- **stalled peer**: rank 1's update is rejected and rank 1 goes on without calling ``compute()``
  (the metric is on a process group with a 3 s timeout); rank 0's ``compute()`` must raise within
  about 3 s, naming the metric and the cause, and rank 1's state must be as before the bad batch;
- **crashed peer**: rank 1's update raises out of the worker (its process ends); rank 0's
  ``compute()`` must raise at once, and the helper must report both ranks' errors.

Afterwards no worker process may be left: each recorded pid must be gone.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from helpers.dist import WorkerError, run_in_processes

from xent_metrics import MulticlassCrossEntropy

PG_TIMEOUT = 3.0  # seconds: the stalled-peer process group's collective timeout
RUN_TIMEOUT = 40.0  # seconds: the helper's bound on the whole run
OUR_MESSAGE = "MulticlassCrossEntropy.compute() could not sum its `sums` state over the process group"
BAD_TARGET = "`target` class indices must lie in [0, 2], got values in [0, 7]"


def _batch(bad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    preds, target = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    if bad:
        target[2] = 7
    return preds, target


def _timed_compute(metric: MulticlassCrossEntropy) -> dict[str, object]:
    start = time.monotonic()
    try:
        value = metric.compute()
    except RuntimeError as err:
        return {"raised": type(err).__name__, "message": str(err), "seconds": time.monotonic() - start}
    return {"raised": None, "value": value.item(), "seconds": time.monotonic() - start}


def _faulty_worker(rank: int, world_size: int, out: str) -> None:
    record: dict[str, object] = {"pid": os.getpid()}
    Path(out, f"pid{rank}").write_text(str(os.getpid()))

    # Stalled peer: rank 1 rejects a batch and skips compute(); rank 0 waits at most the group's timeout.
    stalled = MulticlassCrossEntropy(3, process_group=dist.new_group(timeout=timedelta(seconds=PG_TIMEOUT)))
    stalled.update(*_batch())
    if rank == 1:
        before = stalled.sums.clone()
        try:
            stalled.update(*_batch(bad=True))
        except ValueError as err:
            record["rejected"] = str(err)
        record["state_unchanged"] = bool(torch.equal(stalled.sums, before))
    else:
        record["stalled"] = _timed_compute(stalled)
    dist.barrier()  # the default group is unaffected: both ranks meet again
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))

    # Crashed peer: rank 1's update raises out of the worker, and its process ends.
    crashed = MulticlassCrossEntropy(3)
    crashed.update(*_batch())
    if rank == 1:
        crashed.update(*_batch(bad=True))
    outcome = _timed_compute(crashed)
    Path(out, f"crashed{rank}.json").write_text(json.dumps(outcome))
    if outcome["raised"]:
        raise RuntimeError(outcome["message"])


def _gone(pid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_rank_that_raises_in_update_makes_the_others_fail_fast_not_hang(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError) as failure:
        run_in_processes(_faulty_worker, 2, timeout=RUN_TIMEOUT, out=str(tmp_path))
    elapsed = time.monotonic() - start
    assert elapsed < RUN_TIMEOUT, f"the run took {elapsed:.1f} s: something waited for the helper's own timeout"

    # The helper reports both ranks: rank 1's rejected batch and rank 0's failed collective.
    report = str(failure.value)
    assert "2 of 2 workers failed" in report
    rank0, rank1 = report.split("--- rank 1 of 2:")
    assert "--- rank 0 of 2:" in rank0 and OUR_MESSAGE in rank0 and "every rank must call it" in rank0
    assert BAD_TARGET in rank1 and "ValueError" in rank1

    # Crashed peer: rank 0 failed at once (the peer's sockets closed), well inside the timeout.
    crashed = json.loads((tmp_path / "crashed0.json").read_text())
    assert crashed["raised"] == "RuntimeError" and OUR_MESSAGE in crashed["message"]
    assert crashed["seconds"] < PG_TIMEOUT, crashed
    assert not (tmp_path / "crashed1.json").exists()  # rank 1 never got past its bad update

    # Stalled peer: rank 0 failed after the group's timeout, with the metric and the cause named.
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    stalled = ranks[0]["stalled"]
    assert stalled["raised"] == "RuntimeError", stalled
    assert OUR_MESSAGE in stalled["message"] and "timed out" in stalled["message"].lower()  # gloo's own words
    assert PG_TIMEOUT - 0.5 <= stalled["seconds"] <= PG_TIMEOUT + 5.0, stalled
    assert BAD_TARGET in ranks[1]["rejected"] and ranks[1]["state_unchanged"]

    # No worker outlives the call.
    pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(2)]
    assert pids == [r["pid"] for r in ranks]
    assert all(_gone(pid) for pid in pids), f"worker process(es) left behind: {pids}"
