"""Smoke test of the benchmarks package: it imports, the op counter counts, one tiny case runs in-process.

No time is asserted (the machine is shared); the numbers the benchmark reports are checked for their
kind and for the facts that do not depend on speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root holds `benchmarks`

from benchmarks import report
from benchmarks.cases import all_cases, ce_case
from benchmarks.measure import OpCounter, time_case
from benchmarks.spec import Impl


def test_op_counter_counts_a_known_sequence() -> None:
    x = torch.ones(3)
    with OpCounter() as ops:
        torch.add(x, 1).mul_(2)
    assert ops.total == 2
    assert dict(ops.by_name) == {"aten.add": 1, "aten.mul_": 1}
    with OpCounter() as nothing:
        pass
    assert nothing.total == 0


def test_every_case_is_named_once_and_its_targets_name_its_implementations() -> None:
    cases = all_cases(quick=False)
    assert len({c.name for c in cases}) == len(cases) == 7  # the 128k-vocabulary head case included
    for case in cases:
        names = {i.name for i in case.impls}
        assert case.peer in names
        for target in case.targets:
            for attr in ("impl", "peer"):
                assert getattr(target, attr, case.peer) in names, (case.name, target)


def test_a_tiny_case_runs_and_reports() -> None:
    case = ce_case(64, 10)
    keep = ("ours: multiclass_cross_entropy, eager", "ours: MulticlassCrossEntropy.update (validate_args=False)")
    case.impls = [i for i in case.impls if i.name in (*keep, case.peer)]  # no torch.compile nor slow imports here
    case.impls.append(Impl("broken peer", False, lambda x: 1 / 0))  # a failing peer is reported, not fatal
    result = time_case(case, "cpu", repeats=1, floor=False)
    eager = "ours: multiclass_cross_entropy, eager"
    assert set(result["median_s"]) == {i.name for i in case.impls} - {"broken peer"}
    assert "ZeroDivisionError" in result["errors"]["broken peer"]
    assert result["ops"]["F.cross_entropy"]["device"]["total"] >= 1
    assert result["facts"][f"rel_err[{eager}]"] < 1e-6  # both against F.cross_entropy in float64
    result["floor"] = {"exp_ns": 1.0, "log1p_ns": 0.0, "read_GBps": 1e9}  # 1 ns per exp: the floor is 640 ns
    case_result = {"timing": {"1": result}, "memory": {}, "impls": [], "peer": case.peer, "per_call": False}
    verdicts = {v["target"]: v for v in report.verdicts(case, case_result)}
    speedup = verdicts["eager >= 3x F.cross_entropy(sum)"]
    assert speedup["measured"]["1"] == pytest.approx(result["median_s"]["F.cross_entropy"] / result["median_s"][eager])
    assert verdicts["eager >= 0.5 of the floor"]["measured"]["1"] == pytest.approx(640e-9 / result["median_s"][eager])
    assert verdicts["fused >= 3x F.cross_entropy(sum)"]["holds"] is None  # not run: "not measured", never a pass


def test_the_linear_ce_case_runs_tiny_and_is_exact() -> None:
    from benchmarks.lm_case import OURS, linear_case

    case = linear_case(64, 16, 50)
    result = time_case(case, "cpu", repeats=1, floor=False)
    assert not result["errors"], result["errors"]
    assert result["facts"][f"rel_err[{OURS}]"] < 1e-5  # against F.cross_entropy(F.linear(...)) in float64


def test_the_long_run_measures_every_exported_metric_class() -> None:
    import xent_metrics.metrics
    from benchmarks.longrun import class_names

    assert sorted(class_names()) == sorted(xent_metrics.metrics.__all__)


def test_the_device_correctness_pass_runs_on_the_cpu_and_holds() -> None:
    """``--check-only`` is the command a GPU runs first; on the CPU every check (and the 2-rank sync) holds."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--check-only", "--device", "cpu"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and "correctness on" not in line]
    assert len(rows) == 8 and all(line.rstrip().endswith("| yes |") for line in rows), run.stdout


def test_a_failed_check_is_reported_with_its_error() -> None:
    from benchmarks import device_check

    rows = [{"check": "a wrong value", "max_rel_err": 0.5, "limit": 1e-6, "ok": False}]
    assert "| a wrong value | 5.0e-01 | 1e-06 | NO |" in device_check.table(rows, "cuda")
