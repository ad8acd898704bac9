"""Mutation testing of the numeric core: ``make mutation`` (not part of CI; about an hour on 2 cores).

For each module of :data:`subsets.SUBSETS` the runner lists its mutants (:mod:`mutants`), draws a seeded sample
that fits the time budget, and runs the module's fast test subset once per mutant in a child forked from a
parent that has already imported torch, the package, pytest and every test module of the subset: a mutant costs
its tests, not the imports. The child installs the mutant (``__code__`` swapped in place, constants set) and runs
``pytest.main`` with ``-x``; its exit status says killed (1), survived (0), or timeout (killed by the parent).
A mutant whose bytecode does not change is equivalent by construction and never run.

Results go to ``results.json`` (every mutant run, with its outcome) and ``RESULTS.md`` (counts per module,
survivors, equivalent mutants grouped by reason, from ``equivalent.toml``).

    python tests/mutation/mutate.py --budget 60                 # all modules, sampled to fit 60 minutes
    python tests/mutation/mutate.py --modules _nll _bce --max-mutants 40
    python tests/mutation/mutate.py --retest results-before.json  # only that run's survivors, against today's tests
    python tests/mutation/mutate.py --report                     # rewrite RESULTS.md from results.json
    python tests/mutation/mutate.py --check KEY --tests tests/x.py  # one mutant (a key as printed) against tests

Run it from the repository root with nothing else heavy on the machine: ``--jobs`` mutants at a time, one thread
each (``make mutation`` runs two, one per core of a 2-core machine). ``-x`` keeps a killed mutant short; a survivor
costs the whole subset.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]  # the checkout's package, not an installed copy

import mutants  # noqa: E402
import report  # noqa: E402
import subsets  # noqa: E402

#: Seed of the sample of mutants (the same sample every run on the same source).
SEED = 20261207
#: Extra pytest options of every run: quiet, stop at the first failure, no cache, no doctests of test modules.
PYTEST_ARGS = ["-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header", "--assert=plain"]


def start_child(args: list[str], mutant: mutants.Mutant | None) -> int:
    """Fork; in the child install ``mutant`` and run pytest on ``args`` (exit status: its outcome). Return the pid."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.setsid()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            import pytest

            if mutant is not None and not mutants.install(mutant):
                os._exit(64)
            os._exit(int(pytest.main([*args, *PYTEST_ARGS])))
        except BaseException:
            os._exit(65)
    return pid


def poll_child(pid: int, start: float, timeout: float) -> str | None:
    """The outcome of the child ``pid`` if it has ended (or was killed past ``timeout`` seconds), else ``None``."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        if time.monotonic() - start <= timeout:
            return None
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "timeout"
    code = os.waitstatus_to_exitcode(status)
    return {0: "survived", 64: "equivalent", 5: "error"}.get(code, "killed")


def run_in_child(args: list[str], mutant: mutants.Mutant | None, timeout: float) -> tuple[str, float]:
    """Run one child to its end: ``(outcome, seconds)``."""
    start = time.monotonic()
    pid = start_child(args, mutant)
    while (outcome := poll_child(pid, start, timeout)) is None:
        time.sleep(0.02)
    return outcome, time.monotonic() - start


def warm_up(args: list[str]) -> None:
    """Import the subset's test modules (and everything they import) in this parent: collect them once."""
    import pytest

    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        pytest.main([*args, *PYTEST_ARGS, "--collect-only"])
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)


@functools.cache
def _baseline(args: tuple[str, ...]) -> tuple[str, float]:
    """Import a subset's modules here, then run it unmutated once (modules that share a subset share this)."""
    warm_up(list(args))
    return run_in_child(list(args), None, 600)


def run_module(
    module: str,
    args: list[str],
    limit: int,
    seconds: float,
    only: set[tuple[str, str]] | None,
    save: Callable[[list[dict]], None],
    jobs: int = 1,
) -> list[dict]:
    """Run a module's mutants, in a seeded random order, against its subset until ``seconds`` have passed (those
    started finish), ``jobs`` children at a time: the run is a random sample whose size fits the time. One record
    per mutant (``save``: after each)."""
    outcome, baseline = _baseline(tuple(args))
    if outcome != "survived":
        print(f"{module}: the unmutated subset does not pass ({outcome}); skipped", flush=True)
        return []
    found = mutants.mutants_of(module)
    records: list[dict] = []
    if only is not None:  # a retest: the earlier survivors of this module whose code is gone are recorded as such
        keys = {key for name, key in only if name == module}
        present = {m.key for m in found}
        records = [{"module": module, "key": k, "line": 0, "outcome": "gone"} for k in sorted(keys - present)]
        found = [m for m in found if m.key in keys]
    order = random.Random(SEED).sample(found, min(limit, len(found)))  # seeded; a prefix of it is a sample
    print(f"{module}: {len(found)} mutants, subset {baseline:.1f} s, {seconds:.0f} s", flush=True)
    deadline = time.monotonic() + seconds
    waiting, running = order, {}  # pid -> (mutant, start)
    while waiting or running:
        while waiting and len(running) < jobs and time.monotonic() < deadline:
            mutant = waiting.pop(0)
            running[start_child(args, mutant)] = (mutant, time.monotonic())
        if not running:
            break
        for pid, (mutant, start) in list(running.items()):
            outcome = poll_child(pid, start, max(20.0, 4 * baseline * min(jobs, 2)))
            if outcome is None:
                continue
            del running[pid]
            took = time.monotonic() - start
            records.append({**mutant.__dict__, "key": mutant.key, "outcome": outcome, "seconds": round(took, 2)})
            save(records)
            if outcome in ("survived", "timeout", "error"):
                print(f"  {outcome}: {mutant.key} (line {mutant.line})", flush=True)
        time.sleep(0.02)
    records.sort(key=lambda r: r.get("index", 0))
    save(records)
    print(f"  {module}: {len(records)} run", flush=True)
    return records


def check(key: str, tests: list[str] | None) -> None:
    """Run the mutant ``key`` against ``tests`` (default: its module's subset); print the outcome."""
    module = next(m for m in subsets.SUBSETS if m.rsplit(".", 1)[-1] == key.split(":", 1)[0])
    args = tests or subsets.select([module])[module]
    warm_up(args)
    if run_in_child(args, None, 600)[0] != "survived":
        raise SystemExit(f"the unmutated tests do not pass: {' '.join(args)}")
    mutant = next((m for m in mutants.mutants_of(module) if m.key == key), None)
    if mutant is None:
        raise SystemExit(f"no mutant {key!r} in {module}")
    outcome, took = run_in_child(args, mutant, 600)
    print(f"{outcome} in {took:.1f} s: {key} (line {mutant.line}) against {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="*", help="module names or suffixes (default: every module of SUBSETS)")
    parser.add_argument("--budget", type=float, default=60, help="minutes for the whole run (default 60)")
    parser.add_argument("--max-mutants", type=int, default=10_000, help="at most this many mutants per module")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time (one thread each; default 1)")
    parser.add_argument("--retest", type=Path, help="run only the survivors (and timeouts) of this results file")
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--report", action="store_true", help="only rewrite RESULTS.md from --results")
    parser.add_argument("--check", metavar="KEY", help="run the one mutant KEY (as printed) and print its outcome")
    parser.add_argument("--tests", nargs="*", help="with --check: these pytest arguments instead of its subset")
    options = parser.parse_args()
    os.chdir(ROOT)
    import torch

    # One intra-op thread here and in every child: an OpenMP pool that ran before a fork deadlocks the child
    # (GNU libgomp), and the machine is shared.
    torch.set_num_threads(1)
    if options.check:
        check(options.check, options.tests)
        return
    if not options.report:
        chosen = subsets.select(options.modules)
        only = None
        if options.retest is not None:
            previous = json.loads(options.retest.read_text())["mutants"]
            reasons = report.equivalent_reasons()  # judged equivalent: no test can kill them
            only = {(r["module"], r["key"]) for r in previous if r["outcome"] in ("survived", "timeout")}
            only = {(module, key) for module, key in only if key not in reasons}
        total_weight = sum(subsets.weight(module) for module in chosen)
        old = json.loads(options.results.read_text())["mutants"] if options.results.exists() else []
        kept = []
        if options.retest is not None:  # the earlier run's kills still stand: the tests only grew
            kept = [r for r in json.loads(options.retest.read_text())["mutants"] if (r["module"], r["key"]) not in only]
        done: list[dict] = []

        def save(module_records: list[dict]) -> None:
            merged = _merge(old, kept + done + module_records)
            options.results.write_text(json.dumps({"seed": SEED, "mutants": merged}, indent=1) + "\n")

        if only is not None:  # a retest: only the modules that have survivors to run again share the time
            chosen = {m: a for m, a in chosen.items() if any(name == m for name, _ in only)}
            total_weight = sum(subsets.weight(module) for module in chosen)
        for module, args in chosen.items():
            seconds = options.budget * 60 * subsets.weight(module) / total_weight
            done += run_module(module, args, options.max_mutants, seconds, only, save, options.jobs)
        if only is not None:  # survivors the time did not reach stay as they were
            rerun = {(r["module"], r["key"]) for r in done}
            previous = json.loads(options.retest.read_text())["mutants"]
            done += [r for r in previous if (r["module"], r["key"]) in only - rerun]
            save([])
    before = HERE / "results-before.json"
    report.write(json.loads(options.results.read_text()), HERE / "RESULTS.md",
                 json.loads(before.read_text()) if before.exists() else None)


def _merge(old: list[dict], new: list[dict]) -> list[dict]:
    """The old records of modules this run did not touch, then this run's."""
    touched = {r["module"] for r in new}
    return [r for r in old if r["module"] not in touched] + new


if __name__ == "__main__":
    main()
