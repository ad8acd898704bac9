"""What the per-class monitors show at the end of fit: a terminal table and a heatmap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def worst_first(values: Sequence[float]) -> list[int]:
    """Indices of ``values`` from the largest to the smallest, ``nan`` last (stable for ties).

    Examples
    --------
    >>> worst_first([0.2, float("nan"), 0.5, 0.2])
    [2, 0, 3, 1]
    """

    def key(i: int) -> tuple[bool, float]:
        missing = math.isnan(values[i])
        return missing, 0.0 if missing else -values[i]

    return sorted(range(len(values)), key=key)


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith("s") else "s")


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "nan"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _stderr(record: dict[str, Any] | None, k: int | None) -> float | None:
    """Column ``k``'s standard error in ``record`` (``k=None``: the macro mean's), ``None`` where it has none."""
    if record is None:
        return None
    if k is None:
        return record.get("macro_stderr")
    return record["stderr"][k] if "stderr" in record else None


def _cell(value: float | None, stderr: float | None) -> str:
    """``value``, or ``value +- stderr`` (ASCII, as the rest of the table)."""
    return _fmt(value) if stderr is None else f"{_fmt(value)} +- {_fmt(stderr)}"


def format_table(
    labels: Sequence[str],
    first: dict[str, Any],
    last: dict[str, Any],
    *,
    stage: str,
    extra: dict[str, Any] | None = None,
    extra_stage: str = "train",
    max_rows: int | None = None,
    unit: str = "label",
    loss: str = "BCE",
) -> str:
    """Render the per-label (per-class) table, worst first, with the change since the ``first`` record.

    ``first`` and ``last`` are history records of ``stage`` (``{"epoch", "values", "macro"}``);
    ``extra`` is an optional record of another stage shown as a last column (the last training epoch).
    ``unit`` and ``loss`` are the words of the header (``"class"``, ``"CE"`` for a multiclass model).
    Records with ``"stderr"`` (a monitor with ``error_bars=True``) show ``value +- stderr``, the macro
    row too where the record holds ``"macro_stderr"``.

    Examples
    --------
    >>> first = {"epoch": 0, "values": [0.6, 0.7], "macro": 0.65}
    >>> last = {"epoch": 2, "values": [0.2, 0.5], "macro": 0.35}
    >>> print(format_table(["even", "prime"], first, last, stage="val"))
    Per-label BCE, val epoch 2, worst first (change since epoch 0)
       #  label    val BCE   change
       1  prime     0.5000  -0.2000
       2  even      0.2000  -0.4000
          macro     0.3500  -0.3000
    >>> last = {**last, "stderr": [0.05, 0.1], "macro_stderr": 0.0559}
    >>> print(format_table(["even", "prime"], first, last, stage="val", unit="class", loss="CE"))
    Per-class CE, val epoch 2, worst first (change since epoch 0), value +- standard error
       #  class               val CE   change
       1  prime     0.5000 +- 0.1000  -0.2000
       2  even      0.2000 +- 0.0500  -0.4000
          macro     0.3500 +- 0.0559  -0.3000
    """
    values, before = last["values"], first["values"]
    width = max([len(unit), len("macro"), *map(len, labels)])
    now_width = 9 if "stderr" not in last else 18
    other_width = 10 if extra is None or "stderr" not in extra else 18
    header = f"{'#':>4}  {unit:<{width}}  {stage + ' ' + loss:>{now_width}}  {'change':>7}"
    if extra is not None:
        header += f"  {extra_stage + ' ' + loss:>{other_width}}"
    title = f"Per-{unit} {loss}, {stage} epoch {last['epoch']}, worst first (change since epoch {first['epoch']})"
    lines = [title + (", value +- standard error" if "stderr" in last else ""), header]
    order = worst_first(values)
    shown = order if max_rows is None else order[:max_rows]

    def row(rank: str, name: str, k: int | None) -> str:
        now, then = (last["macro"], first["macro"]) if k is None else (values[k], before[k])
        text = f"{rank:>4}  {name:<{width}}  {_cell(now, _stderr(last, k)):>{now_width}}"
        text += f"  {_fmt(now - then, signed=True):>7}"
        if extra is None:
            return text
        other = extra["macro"] if k is None else extra["values"][k]
        return text + f"  {_cell(other, _stderr(extra, k)):>{other_width}}"

    for rank, k in enumerate(shown, start=1):
        lines.append(row(str(rank), labels[k], k))
    if len(shown) < len(order):
        lines.append(f"{'':>4}  ... {len(order) - len(shown)} more {_plural(unit)} (max_table_rows={max_rows})")
    lines.append(row("", "macro", None))
    return "\n".join(line.rstrip() for line in lines)


HEATMAP_MAX_LABELS = 50  # the default: rows the heatmap names one by one; more are the worst of them
MAX_HEIGHT_IN = 16.0  # 1600 px at the 100 dpi of save_png, however many rows


def heatmap_rows(last: Sequence[float], max_labels: int | None, worst_k: int | None = None) -> list[int]:
    """The rows the heatmap draws, worst last epoch first: all of them up to ``max_labels``, else the worst few.

    Above ``max_labels`` rows it keeps the worst ``min(worst_k, max_labels)`` (``worst_k``: the
    monitor's ``log_worst_k``, so the heatmap shows what was logged), or the worst ``max_labels``.
    ``max_labels=None`` keeps every row.

    Examples
    --------
    >>> heatmap_rows([0.1, 0.9, 0.5, 0.7], max_labels=3)
    [1, 3, 2]
    >>> heatmap_rows([0.1, 0.9, 0.5, 0.7], max_labels=3, worst_k=1)
    [1]
    >>> heatmap_rows([0.1, 0.9, 0.5, 0.7], max_labels=None, worst_k=1)
    [1, 3, 2, 0]
    """
    order = worst_first(last)
    if max_labels is None or len(order) <= max_labels:
        return order
    return order[: max_labels if worst_k is None else min(worst_k, max_labels)]


def heatmap_figure(
    labels: Sequence[str],
    records: Sequence[dict[str, Any]],
    *,
    stage: str,
    prefix: str,
    unit: str = "label",
    loss: str = "BCE",
    max_labels: int | None = HEATMAP_MAX_LABELS,
    worst_k: int | None = None,
) -> Any:
    """Build a matplotlib ``Figure``: one row per label or class (worst last epoch on top), one column per epoch.

    Above ``max_labels`` labels only the worst are drawn (see :func:`heatmap_rows`), named, and the
    title says how many are not shown; the figure is at most 16 inches (1600 px) tall.
    Uses ``matplotlib.figure.Figure`` directly (no pyplot, no global backend change); saving it as
    PNG goes through the Agg renderer.
    """
    from matplotlib.figure import Figure  # lazy: matplotlib is only needed at the end of fit

    grid = np.array([r["values"] for r in records], dtype=np.float64).T  # (K, E)
    order = heatmap_rows(list(grid[:, -1]), max_labels, worst_k)
    grid = grid[order]
    n_labels, n_epochs = grid.shape
    fig = Figure(
        figsize=(min(3.0 + 0.6 * n_epochs, 24.0), min(1.8 + 0.32 * n_labels, MAX_HEIGHT_IN)), layout="constrained"
    )
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="magma_r", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=f"{stage} {loss} (lower is better)")
    epochs = [r["epoch"] for r in records]
    ax.set_xticks(range(n_epochs), [str(e) for e in epochs] if n_epochs <= 40 else [""] * n_epochs)
    ax.set_xlabel("epoch")
    if n_labels <= 60:
        ax.set_yticks(range(n_labels), [labels[k] for k in order])
    else:
        ax.set_ylabel(f"{n_labels} {_plural(unit)}, worst on top")
    if n_labels * n_epochs <= 300:
        middle = np.nanmean(grid) if np.isfinite(grid).any() else 0.0
        for (i, j), value in np.ndenumerate(grid):
            color = "white" if value > middle else "black"
            ax.text(j, i, _fmt(value)[:5], ha="center", va="center", fontsize=7, color=color)
    title = f"Per-{unit} {stage} {loss} over epochs ({prefix})"
    hidden = len(labels) - n_labels
    if hidden:
        title += f"\nworst {n_labels} of {len(labels)} {_plural(unit)}; {hidden} not shown"
    ax.set_title(title)
    return fig


def save_png(fig: Any, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (creating the folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
