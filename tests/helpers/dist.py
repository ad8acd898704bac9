"""Run a function in N ``torch.distributed`` (gloo) processes on 127.0.0.1 and collect what each returns.

Usage (the function must be importable by the child processes: define it at module level)::

    from helpers.dist import run_in_processes

    def _worker(rank: int, world_size: int, scale: float) -> float:
        # the default process group (gloo, 127.0.0.1) is initialised when this runs
        value = torch.tensor([rank * scale])
        torch.distributed.all_reduce(value)
        return value.item()

    def test_sum() -> None:
        assert run_in_processes(_worker, 3, scale=2.0) == [6.0, 6.0, 6.0]

Rules:

- Each worker is called as ``fn(rank, world_size, **kwargs)`` in a fresh process forked from a
  ``forkserver`` that has imported torch and torchmetrics (the first call in a session pays that
  import once, later calls start in about a second): still, put many checks in one worker and
  return their results rather than starting processes once per check. Return values travel back
  pickled by value (tensors, dicts, floats are fine).
- pytest's ``filterwarnings = error`` does not reach the children: record warnings there with
  ``warnings.catch_warnings(record=True)`` and return them if a test asserts on them.
- If any worker raises, the others get 3 s to report too, then all are stopped and
  :class:`WorkerError` is raised with every failed rank's traceback. If not every result is back
  after ``timeout`` seconds, all workers are killed and ``TimeoutError`` is raised. Collectives
  inside a worker also time out after ``timeout`` seconds. No child process outlives the call.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import pickle
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

__all__ = ["WorkerError", "run_in_processes"]

_PRELOAD = ("torch", "torch.distributed", "torchmetrics")


class WorkerError(AssertionError):
    """A worker raised (the message holds its rank and traceback) or died without a result."""


def _context() -> Any:
    """A ``forkserver`` context whose server has imported torch once: workers start in well under a second.

    The server is a single-threaded process started (once per interpreter) the ``spawn`` way, so the
    workers inherit neither the parent's threads nor its state, as with ``spawn``, without paying
    the torch import (several seconds on a loaded 2-core machine) per worker.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([name for name in _PRELOAD if importlib.util.find_spec(name) is not None])
    return ctx


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(fn: Callable, rank: int, world_size: int, port: int, timeout: float, kwargs: dict, out: Any) -> None:
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only: no external interface is touched
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout),
        )
        try:
            result = fn(rank, world_size, **kwargs)
        finally:
            dist.destroy_process_group()
        out.put((rank, True, pickle.dumps(result)))
    except BaseException:
        out.put((rank, False, traceback.format_exc()))


def _stop(processes: list, grace: float) -> None:
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join()


def run_in_processes(fn: Callable[..., Any], world_size: int, timeout: float = 60.0, **kwargs: Any) -> list[Any]:
    """Run ``fn(rank, world_size, **kwargs)`` in ``world_size`` gloo processes; return the results in rank order.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled by reference into each child).
    world_size : int
        Number of processes (ranks ``0 .. world_size - 1``).
    timeout : float, default=60.0
        Seconds for the whole run and for each collective inside it.
    **kwargs
        Passed to ``fn``; must be picklable.

    Returns
    -------
    list
        ``[fn(0, ...), fn(1, ...), ...]``.

    Raises
    ------
    WorkerError
        A worker raised or died; the message holds its rank and traceback.
    TimeoutError
        Not every result came back within ``timeout`` seconds.
    """
    ctx = _context()
    out = ctx.Queue()
    port = _free_port()
    processes = [
        ctx.Process(target=_entry, args=(fn, rank, world_size, port, timeout, kwargs, out), daemon=True)
        for rank in range(world_size)
    ]
    for proc in processes:
        proc.start()
    results: dict[int, Any] = {}
    errors: dict[int, str] = {}
    grace = 0.0
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(errors) < world_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if errors:
                    break
                missing = sorted(set(range(world_size)) - set(results))
                raise TimeoutError(f"ranks {missing} of {world_size} returned nothing within {timeout} s")
            try:
                rank, ok, payload = out.get(timeout=min(remaining, 0.5))
            except queue_module.Empty:
                seen = set(results) | set(errors)
                for r, proc in enumerate(processes):
                    if r not in seen and proc.exitcode not in (None, 0):
                        errors[r] = f"exited with code {proc.exitcode} and no result"
                continue
            if ok:
                results[rank] = pickle.loads(payload)
            else:
                errors[rank] = payload
                deadline = min(deadline, time.monotonic() + 3.0)  # collect the other ranks' errors briefly
        if errors:
            report = "\n".join(f"--- rank {r} of {world_size}:\n{errors[r]}" for r in sorted(errors))
            raise WorkerError(f"{len(errors)} of {world_size} workers failed:\n{report}")
        grace = 10.0
    finally:
        _stop(processes, grace)
        out.close()
        out.join_thread()
    return [results[rank] for rank in range(world_size)]


def run_torchrun(script: str, *args: str, processes: int = 2, timeout: float = 240.0) -> str:
    """Run ``script`` under ``torchrun`` (gloo on 127.0.0.1) and return its output; assert it exited with 0.

    torchrun and its workers run in one new process group, killed together when ``timeout`` passes.
    """
    import signal
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
               f"--nproc_per_node={processes}", script, *args]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # timed out: stop torchrun and its workers (one process group) before failing
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, out
    return out
