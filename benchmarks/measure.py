"""The measuring: time, peak extra memory, the machine's floor and the aten ops one call dispatches.

Every measurement runs in a fresh child process (``run_child``) with ``torch.set_num_threads(threads)``
set first, so the thread counts of one run are measured side by side on the same code and data.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.spec import Call, Case, Impl, Inputs, head

ROOT = Path(__file__).resolve().parent.parent
PER_CALL_INNER = 200  # calls per timed sample of a per-step case


class OpCounter:
    """Count the aten ops dispatched inside ``with OpCounter() as ops:`` (``ops.total``, ``ops.by_name``)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                counter.by_name[str(func.overloadpacket)] += 1
                return func(*args, **(kwargs or {}))

        self.by_name: Counter[str] = Counter()
        self._mode = _Mode()

    @property
    def total(self) -> int:
        return sum(self.by_name.values())

    def __enter__(self) -> OpCounter:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def count_ops(call: Call) -> dict[str, Any]:
    """Aten ops dispatched by one call: the total and the five most frequent."""
    with OpCounter() as ops:
        call()
    return {"total": ops.total, "top": dict(ops.by_name.most_common(5))}


def elapsed(call: Call, inner: int, device: str) -> float:
    """Seconds per call over ``inner`` calls: CUDA events on a GPU, ``perf_counter`` on the CPU."""
    import torch

    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(inner):
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner
    begin = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - begin) / inner


def measure_floor(device: str) -> dict[str, float]:
    """Per-element ``exp`` and ``log1p`` cost on cache-resident data and the read bandwidth (all threads)."""
    import torch

    x = torch.rand(1 << 18, device=device) * 4 - 2
    out = torch.empty_like(x)
    big = torch.rand(1 << 26, device=device)  # 256 MiB

    def per_element(fn: Call, reps: int, numel: int) -> float:
        fn()
        return min(elapsed(fn, reps, device) / numel for _ in range(5))  # a floor: the least disturbed run

    exp_s = per_element(lambda: torch.exp(x, out=out), 200, x.numel())
    log1p_s = per_element(lambda: torch.log1p(x.abs(), out=out), 100, x.numel())
    read_s = per_element(lambda: big.sum(), 3, big.numel() * 4)
    return {"exp_ns": exp_s * 1e9, "log1p_ns": log1p_s * 1e9, "read_GBps": 1 / read_s / 1e9}


def _to_meta(x: Inputs) -> Inputs:
    import torch

    return {k: v.to("meta") if isinstance(v, torch.Tensor) else ("meta" if k == "device" else v) for k, v in x.items()}


def time_case(case: Case, device: str, repeats: int, floor: bool = True) -> dict[str, Any]:
    """Interleaved medians of every implementation, op counts, and the accuracy facts of the first results."""
    x = case.make(device)
    calls, outputs, errors = {}, {}, {}
    for impl in case.impls:
        try:
            calls[impl.name] = impl.build(x)
            outputs[impl.name] = calls[impl.name]()  # warm-up (compiles the fused kernel)
        except Exception as error:  # a missing optional peer is reported, not fatal
            errors[impl.name] = f"{type(error).__name__}: {error}"[:300]
            calls.pop(impl.name, None)
    floors = measure_floor(device) if floor and not case.per_call else {}  # in this child: the timings' load
    inner = PER_CALL_INNER if case.per_call else 1
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(elapsed(call, inner, device))
    facts: dict[str, Any] = {}
    if case.check is not None:
        try:
            facts = case.check(x, {k: v for k, v in outputs.items() if k in calls})
        except Exception as error:
            facts = {"check_error": f"{type(error).__name__}: {error}"}
    return {
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "all_s": times,
        "errors": errors,
        "facts": facts,
        "ops": _op_counts(case, calls, x),
        "floor": floors,
        "floor_work": case.floor_work(x),
        "input_bytes": case.input_bytes(x),
    }


def _op_counts(case: Case, calls: dict[str, Call], x: Inputs) -> dict[str, Any]:
    """Ops per call on the case's device and, for the implementations marked ``meta``, on a meta batch."""
    out: dict[str, Any] = {}
    meta_x = _to_meta(x) if any(i.meta for i in case.impls) else {}
    for impl in case.impls:
        if impl.name not in calls or not impl.torch_ops:
            continue
        entry: dict[str, Any] = {}
        for where in ("device", "meta") if impl.meta else ("device",):
            try:
                call = calls[impl.name] if where == "device" else impl.build(meta_x)
                call()  # state or lazy set-up created outside the count
                entry[where] = count_ops(call)
            except Exception as error:
                entry[where] = {"error": f"{type(error).__name__}: {error}"[:200]}
        out[impl.name] = entry
    return out


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def peak_extra_memory(case: Case, impl: Impl, device: str) -> dict[str, Any]:
    """Peak extra memory of one call on fresh data: RSS high-water (CPU) or the allocator's peak (CUDA)."""
    import torch

    x = case.make(device)
    if impl.warm_rows is not None:  # load the code paths (and compile) on a slice, not on the measured data
        impl.build(head(x, impl.warm_rows))()
    call = impl.build(x)
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
    return {"peak_extra_bytes": max(0, _status_kib("VmHWM") - base) * 1024, "how": "VmHWM - VmRSS before the call"}


def child_main(spec: dict[str, Any]) -> None:
    """Entry point of a child process: set the thread count, measure, print one ``RESULT`` line."""
    import torch

    torch.set_num_threads(spec["threads"])
    kind = spec["kind"]
    result: dict[str, Any]
    if kind == "longrun":
        from benchmarks.longrun import long_run

        result = long_run(spec["case"], spec["updates"])
    else:
        from benchmarks.cases import all_cases

        case = next(c for c in all_cases(spec["quick"]) if c.name == spec["case"])
        if kind == "time":
            result = time_case(case, spec["device"], spec["repeats"])
        else:
            result = peak_extra_memory(case, next(i for i in case.impls if i.name == spec["impl"]), spec["device"])
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result, default=float), flush=True)


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``child_main(spec)`` in a fresh interpreter; its result, or ``{"error": ...}``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "benchmarks", "--child", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"error": ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1][:300]}
