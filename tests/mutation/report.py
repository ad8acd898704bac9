"""``RESULTS.md`` from a results file: counts per module, the survivors, equivalent mutants grouped by reason.

Equivalent mutants are of two kinds: those whose bytecode does not change (found by the runner, never run), and
survivors judged equivalent by hand, listed with their reason in ``equivalent.toml`` (``[[group]]`` tables of
``reason`` and ``mutants``, the keys the runner prints). A listed key that no longer survives is ignored.
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTCOMES = ("killed", "survived", "timeout", "equivalent", "error")
#: The kernels, held to 95% of their non-equivalent mutants killed (90% over every module).
KERNELS = ("_nll", "_bce", "_softmax_ce", "_sums", "_head_ce", "linear")


def equivalent_reasons(path: Path = HERE / "equivalent.toml") -> dict[str, str]:
    """Mutant key -> why it is equivalent (hand-checked survivors)."""
    if not path.exists():
        return {}
    groups = tomllib.loads(path.read_text())["group"]
    return {key: group["reason"] for group in groups for key in group["mutants"]}


def classify(records: list[dict], reasons: dict[str, str]) -> list[dict]:
    """Records with hand-judged equivalent survivors marked ``equivalent`` (with their ``reason``)."""
    out = []
    for record in records:
        if record["outcome"] == "survived" and record["key"] in reasons:
            record = {**record, "outcome": "equivalent", "reason": reasons[record["key"]]}
        elif record["outcome"] == "equivalent":
            record = {**record, "reason": "the same bytecode (constant folding or a no-op edit)"}
        out.append(record)
    return out


def _short(key: str) -> str:
    """A key on one line: a negated ``if`` statement's key holds its whole block; keep the condition."""
    lines = key.splitlines()
    if len(lines) == 1:
        return key
    return f"{lines[0]} ... -> {key.split(' -> ', 1)[1].splitlines()[0]} ..."


def rate(counts: Counter) -> float:
    """Killed (timeouts count as killed) over the non-equivalent mutants run."""
    live = counts["killed"] + counts["timeout"] + counts["survived"] + counts["error"]
    return (counts["killed"] + counts["timeout"]) / live if live else float("nan")


def _table(records: list[dict]) -> list[str]:
    per_module: dict[str, Counter] = defaultdict(Counter)
    for record in [r for r in records if r["outcome"] != "gone"]:
        per_module[record["module"]][record["outcome"]] += 1
    lines = ["| module | run | killed | survived | timeout | equivalent | killed / non-equivalent |", "|---" * 7 + "|"]
    groups = {"kernels": Counter(), "all": Counter()}
    for module in sorted(per_module):
        counts = per_module[module]
        groups["all"].update(counts)
        if module.rsplit(".", 1)[-1] in KERNELS:
            groups["kernels"].update(counts)
        lines.append(_row(module, counts))
    lines += [_row(f"**{name}**", counts) for name, counts in groups.items()]
    return lines


def _row(name: str, counts: Counter) -> str:
    cells = [str(counts[o]) for o in ("killed", "survived", "timeout", "equivalent")]
    return f"| {name} | {sum(counts.values())} | " + " | ".join(cells) + f" | {rate(counts):.1%} |"


def write(data: dict, path: Path, before: dict | None = None) -> None:
    """Write ``RESULTS.md`` for a runner results file (``before``: an earlier run to compare with)."""
    reasons = equivalent_reasons()
    records = classify(data["mutants"], reasons)
    lines = [
        "# Mutation testing: last results",
        "",
        "Written by `python tests/mutation/mutate.py` (`make mutation`); see that file for how mutants are drawn",
        f"(seed {data['seed']}) and run. Killed includes timeouts; errors (the subset collected nothing) are live.",
        "",
        *_table(records),
    ]
    if before is not None:
        earlier = _table(classify(before["mutants"], reasons))
        lines += [
            "",
            "Before (`results-before.json`): the kernels' first sample (100 mutants), run against the suite and",
            "subsets of the time, before the tests of issue 25. Retested against those tests (`--retest`), its ten",
            "survivors were all killed. The table above is a later, larger sample of today's code.",
            "",
            *earlier,
        ]
    survivors = [r for r in records if r["outcome"] in ("survived", "error")]
    lines += ["", f"## Survivors ({len(survivors)})", ""]
    lines += [f"- `{_short(r['key'])}` (line {r['line']})" for r in survivors] or ["None."]
    by_reason: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if record["outcome"] == "equivalent":
            by_reason[record["reason"]].append(record)
    gone = [r for r in records if r["outcome"] == "gone"]
    if gone:
        lines += ["", f"## Survivors of the earlier run whose code was rewritten since ({len(gone)}; not counted)", ""]
        lines += [f"- `{_short(r['key'])}`" for r in gone]
    lines += ["", "## Equivalent mutants, by reason", ""]
    for reason, group in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        lines.append(f"- {reason} ({len(group)}):")
        lines += [f"  - `{_short(r['key'])}` (line {r['line']})" for r in group]
    path.write_text("\n".join(lines) + "\n")
