"""The report: each target's verdict at every thread count, and the markdown tables."""

from __future__ import annotations

from typing import Any

from benchmarks.spec import Accuracy, Case, FloorFraction, MiB, OpsAtMost, PeakMemory, Speedup, Target

DIST = "dist_C1000"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def floor_seconds(work: list[int] | tuple[int, int, int], floor: dict[str, float]) -> float:
    exps, logs, nbytes = work
    return max((exps * floor["exp_ns"] + logs * floor["log1p_ns"]) * 1e-9, nbytes / (floor["read_GBps"] * 1e9))


def _per_thread(target: Target, case: dict[str, Any]) -> dict[str, float | None]:
    """The measured value of a Speedup or FloorFraction target at each thread count."""
    out: dict[str, float | None] = {}
    for threads, timing in case["timing"].items():
        med = timing.get("median_s", {})
        ours = med.get(target.impl)
        if isinstance(target, Speedup):
            peer = med.get(target.peer)
            out[threads] = peer / ours if ours and peer else None
        elif ours and "exp_ns" in timing.get("floor", {}):
            out[threads] = floor_seconds(timing["floor_work"], timing["floor"]) / ours
        else:
            out[threads] = None
    return out


def _single(target: Target, case: dict[str, Any]) -> tuple[Any, str, bool | None]:
    """(measured, text, holds) of a target measured once (memory, accuracy, op count)."""
    first = next(iter(case["timing"].values()), {})
    if isinstance(target, PeakMemory):
        got = case["memory"].get(target.impl, {}).get("peak_extra_bytes")
        text = f"{got / MiB:.1f} MiB (limit {target.limit_bytes / MiB:.1f} MiB)" if got is not None else "-"
        return got, text, None if got is None else got <= target.limit_bytes
    if isinstance(target, Accuracy):
        facts = first.get("facts", {})
        got = facts.get(target.key)
        limit = target.limit if target.than is None else facts.get(target.than)
        text = "-" if got is None else f"{got:.2e} (limit {'-' if limit is None else f'{limit:.2e}'})"
        return got, text, None if got is None or limit is None else got <= limit
    assert isinstance(target, OpsAtMost)
    meta = first.get("ops", {}).get(target.impl, {}).get("meta")
    if meta is None:
        return None, "-", None
    if "error" in meta:
        return None, f"meta batch refused ({meta['error'].split(':')[0]})", False
    return meta["total"], f"{meta['total']} ops (limit {target.limit})", meta["total"] <= target.limit


def verdicts(case_obj: Case, case: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per target: measured values (per thread count where time enters), text, holds."""
    out = []
    for target in case_obj.targets:
        verdict: dict[str, Any] = {"case": case_obj.name, "target": target.what, "kind": type(target).__name__}
        if isinstance(target, Speedup | FloorFraction):
            values = _per_thread(target, case)
            unit = "x" if isinstance(target, Speedup) else ""
            verdict["measured"] = values
            if isinstance(target, FloorFraction):  # above 1: the floor itself was slowed by the load, not a result
                values = {t: None if v is not None and v > 1 else v for t, v in values.items()}
            verdict["text"] = {t: "-" if v is None else f"{v:.2f}{unit}" for t, v in values.items()}
            measured = [v for v in values.values() if v is not None]
            verdict["holds"] = None if not measured else all(v >= target.at_least for v in measured)
        else:
            verdict["measured"], verdict["text"], verdict["holds"] = _single(target, case)
        out.append(verdict)
    return out


def dist_verdicts(dist: dict[str, Any]) -> list[dict[str, Any]]:
    if "error" in dist:
        return [{"case": DIST, "target": "2 gloo ranks ran", "text": dist["error"], "holds": False}]
    over = dist["ours"]["over_bare_paired"]
    ones = dist["ours"]["collectives_per_compute"]
    return [
        {"case": DIST, "target": "compute() <= 1.5x a bare all_reduce of the same state", "measured": over,
         "text": f"{over:.2f}x the bare all_reduce", "holds": over <= 1.5},
        {"case": DIST, "target": "one collective per compute()", "measured": ones, "text": str(ones),
         "holds": ones == 1},
    ]  # fmt: skip


def _ops_cell(ops: dict[str, Any]) -> str:
    cells = []
    for where in ("device", "meta"):
        entry = ops.get(where)
        if entry is not None:
            cells.append(f"{where}: " + ("refused" if "error" in entry else str(entry["total"])))
    return ", ".join(cells) or "-"


def _case_rows(name: str, case: dict[str, Any]) -> list[str]:
    rows, threads = [], list(case["timing"])
    first = case["timing"][threads[0]]
    for impl in case["impls"]:
        cells = []
        for t in threads:
            med = case["timing"][t].get("median_s", {})
            ours, peer = med.get(impl["name"]), med.get(case["peer"])
            if ours is None:
                err = case["timing"][t].get("errors", {}).get(impl["name"], case["timing"][t].get("error", "not run"))
                cells.append(f"skipped: {str(err)[:60]}")
            else:
                ratio = f" ({peer / ours:.2f}x)" if impl["ours"] and peer else ""
                cells.append(fmt_time(ours) + ratio)
        mem = case["memory"].get(impl["name"], {})
        mem_s = (
            f"{mem['peak_extra_bytes'] / MiB:.1f} MiB" if "peak_extra_bytes" in mem else ("-" if not mem else "error")
        )
        floor = []
        for t in threads:
            timing, med = case["timing"][t], case["timing"][t].get("median_s", {}).get(impl["name"])
            if med and "exp_ns" in timing.get("floor", {}):
                fraction = floor_seconds(timing["floor_work"], timing["floor"]) / med
                floor.append(f"{fraction:.2f}" if fraction <= 1 else "(>1: floor slowed)")
        ops = _ops_cell(first.get("ops", {}).get(impl["name"], {}))
        rows.append(f"| {name} | {impl['name']} | {' | '.join(cells)} | {ops} | {mem_s} | {' / '.join(floor) or '-'} |")
    return rows


def _dist_rows(dist: dict[str, Any], columns: int) -> list[str]:
    if "error" in dist:
        return [f"| {DIST} | 2 gloo ranks | skipped: {dist['error']} |" + " |" * (columns - 3)]
    pad = " | ".join(["-"] * (columns - 4))
    rows = []
    for label, res in dist.items():
        note = ""
        if "over_bare_paired" in res:
            note = f" ({res['over_bare_paired']:.2f}x bare"
            note += f", default sync {res['default_sync_over_ours_paired']:.2f}x slower)" if label == "ours" else ")"
        what = f"{label}: compute() ({res['collectives_per_compute']} collectives)" if label in ("ours",
               "torchmetrics default sync") else label  # fmt: skip
        rows.append(f"| {DIST} | {what} | {fmt_time(res['median_s'])}{note} | {pad} |")
    return rows


def table(results: dict[str, Any]) -> str:
    """The whole report as markdown: the machine, the cases (both thread counts), the targets."""
    threads, machine = results["threads"], results["machine"]
    floors = next(
        (c["timing"] for c in results["cases"].values() if "exp_ns" in c["timing"][threads[0]].get("floor", {})), {}
    )
    floor_s = "; ".join(
        f"{t} thread(s): exp {f['floor']['exp_ns']:.3f} ns, log1p {f['floor']['log1p_ns']:.3f} ns, "
        f"read {f['floor']['read_GBps']:.1f} GB/s"
        for t, f in floors.items()
    )
    time_heads = " | ".join(f"{t} thread{'s' if t != '1' else ''} (peer / ours)" for t in threads)
    lines = [
        f"{machine['cpu']}, torch {machine['torch']}, device {machine['device']}, {machine['date']}, "
        f"load {machine['load_before']:.1f} -> {machine.get('load_after', 0):.1f}; floor (first case): {floor_s}",
        "",
        f"| case | implementation | {time_heads} | aten ops per call | peak extra memory | floor |",
        "|---|---|" + "---|" * len(threads) + "---|---|---|",
    ]
    for name, case in results["cases"].items():
        lines += _case_rows(name, case)
    if "distributed" in results:
        lines += _dist_rows(results["distributed"], 5 + len(threads))
    lines += ["", "| case | target | " + " | ".join(f"{t} thr." for t in threads) + " | holds |",
              "|---|---|" + "---|" * len(threads) + "---|"]  # fmt: skip
    for v in results["verdicts"]:
        text = v.get("text", "-")
        cells = (
            [text.get(t, "-") for t in threads] if isinstance(text, dict) else [text] + ["(same)"] * (len(threads) - 1)
        )
        holds = "not measured" if v.get("holds") is None else ("yes" if v["holds"] else "NO")
        lines.append(f"| {v['case']} | {v['target']} | {' | '.join(cells)} | {holds} |")
    return "\n".join(lines)
