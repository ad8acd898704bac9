"""Command line: run the cases at 1 and 2 threads side by side, print the table, write the JSON history."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.cases import all_cases
from benchmarks.measure import child_main, run_child
from benchmarks.spec import Case, Impl, PeakMemory

RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no torch.compile case nor secondary peers")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default 7)")
    parser.add_argument("--only", nargs="*", default=None, help=f"case names to run, e.g. ce_65536x1000 {report.DIST}")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the cases run (default cpu)")
    parser.add_argument(
        "--threads", default=None, help="torch thread counts, one child process each (default 1,2; cuda: 1)"
    )
    parser.add_argument(
        "--check-only", action="store_true", help="only the correctness pass against float64 (on --device)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the per-implementation memory children")
    parser.add_argument("--long-run", action="store_true", help="issue 12: many small updates of every Metric class")
    parser.add_argument("--updates", type=int, default=10**6, help="updates per class for --long-run (default 10**6)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/<time>.json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def _machine(device: str, quick: bool) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        )
    except (OSError, StopIteration):
        pass
    if device == "cuda":
        cpu += f" + {torch.cuda.get_device_name()}"
    return {
        "cpu": f"{cpu} ({os.cpu_count()} CPUs)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "quick": quick,
        "load_before": os.getloadavg()[0],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device cuda: CUDA is not available here (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda}). Run it on a machine with an NVIDIA GPU and a CUDA build of torch. "
            "Nothing was measured."
        )


def _memory_impls(case: Case, quick: bool) -> list[Impl]:
    """Every implementation; with --quick only those a memory target names and the case's peer."""
    if not quick:
        return case.impls
    named = {t.impl for t in case.targets if isinstance(t, PeakMemory)}
    return [i for i in case.impls if i.name in named or i.name == case.peer]


def _log(started: float, what: str) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {what}", file=sys.stderr, flush=True)


def _run_case(case: Case, args: argparse.Namespace, threads: list[int], started: float) -> dict[str, Any]:
    spec = {"kind": "time", "case": case.name, "device": args.device, "quick": args.quick}
    spec["repeats"] = args.repeats or (3 if args.quick else 7)
    timing = {}
    for t in threads:
        _log(started, f"{args.device} {case.name}, {t} thread(s) ...")
        timing[str(t)] = run_child({**spec, "threads": t}, 900)
    memory = {}
    if not args.no_memory and not case.per_call:
        for impl in _memory_impls(case, args.quick):
            if impl.name in timing[str(threads[0])].get("median_s", {}):
                memory[impl.name] = run_child({**spec, "kind": "memory", "impl": impl.name, "threads": threads[0]}, 600)
    return {
        "title": case.title,
        "peer": case.peer,
        "per_call": case.per_call,
        "impls": [{"name": i.name, "ours": i.ours} for i in case.impls],
        "timing": timing,
        "memory": memory,
    }


def _write(results: dict[str, Any], out: Path | None, suffix: str) -> Path:
    path = out or RESULTS / f"{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}-{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return path


def _long_run(args: argparse.Namespace, started: float) -> None:
    from benchmarks.longrun import class_names, long_run_table

    results: dict[str, Any] = {"machine": _machine("cpu", False), "updates": args.updates, "long_run": {}}
    for name in class_names():
        _log(started, f"long run: {name}, {args.updates:,} updates ...")
        spec = {"kind": "longrun", "case": name, "updates": args.updates, "threads": 1}
        results["long_run"][name] = run_child(spec, 3600)
    results["machine"]["load_after"] = os.getloadavg()[0]
    results["table"] = long_run_table(results["long_run"])
    path = _write(results, args.out, "long-run")
    print(results["table"])
    print(f"\nwritten to {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return
    started = time.perf_counter()
    if args.long_run:
        _long_run(args, started)
        return
    _check_device(args.device)
    threads = [int(t) for t in (args.threads or ("1" if args.device == "cuda" else "1,2")).split(",")]
    results: dict[str, Any] = {"machine": _machine(args.device, args.quick), "threads": [str(t) for t in threads]}
    results["cases"], results["verdicts"] = {}, []
    if args.device != "cpu" or args.check_only:
        from benchmarks import device_check

        _log(started, f"correctness on {args.device} against float64 (and 2 gloo ranks) ...")
        results["correctness"] = device_check.run_checks(args.device)
        print(device_check.table(results["correctness"], args.device) + "\n", flush=True)
        failed = [r["check"] for r in results["correctness"] if not r["ok"]]
        if args.check_only or failed:
            raise SystemExit(f"correctness failed on {args.device}: {failed}" if failed else 0)
    for case in all_cases(args.quick):
        if (args.only and case.name not in args.only) or (case.cpu_only and args.device != "cpu"):
            continue
        results["cases"][case.name] = _run_case(case, args, threads, started)
        results["verdicts"] += report.verdicts(case, results["cases"][case.name])
    if args.device == "cpu" and (not args.only or report.DIST in args.only):
        from benchmarks.distributed import run_distributed

        _log(started, "distributed, 2 gloo ranks of 1 thread ...")
        results["distributed"] = run_distributed(20 if args.quick else 100, 300)
        results["verdicts"] += report.dist_verdicts(results["distributed"])
    results["machine"]["load_after"] = os.getloadavg()[0]
    results["wall_s"] = time.perf_counter() - started
    results["table"] = report.table(results)
    path = _write(results, args.out, args.device)
    print(results["table"])
    print(f"\nwritten to {path} in {results['wall_s']:.0f} s", file=sys.stderr)
