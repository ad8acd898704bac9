"""``plot`` for every Metric class: torchmetrics' look for a value or a history, a bar chart per class.

A value has the shape ``compute()`` returns: ``()``, or ``(K,)`` with ``average="none"``. One more
leading dimension (a list of values, or ``MetricTracker.compute_all()``) is a history over steps.
matplotlib is imported when a plot is drawn, never when the package is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot(metric: Any, val: object, ax: Axes | None, names: Sequence[str] | None) -> tuple[Figure, Axes]:
    """Draw ``val`` (``metric.compute()`` when None) for ``metric``; see ``SumsMetric.plot``."""
    plt = _pyplot()
    from torchmetrics.utilities.plot import plot_single_or_multi_val

    per_class = getattr(metric, "average", None) == "none"
    values = metric.compute() if val is None else _as_tensor(val)
    values = values.detach().to(device="cpu", dtype=torch.float64)
    if values.ndim not in (int(per_class), int(per_class) + 1):
        kind = "per-class values of shape (K,) (average='none')" if per_class else "a single value of shape ()"
        raise ValueError(
            f"`val` for {type(metric).__name__} must be {kind} or a list of them over steps, got shape "
            f"{tuple(values.shape)}."
        )
    labels = _labels(metric, values, per_class, names)
    name = type(metric).__name__
    drawn: Any
    if per_class and values.ndim == 1:
        drawn = plt.subplots() if ax is None else (ax.get_figure(), ax)
        _bars(drawn[1], values, labels, name, metric.plot_lower_bound)
    else:  # torchmetrics' own plot: a point, or lines over steps (one per class, named, for per-class values)
        series: Any = values if values.ndim == 0 else list(values)
        if per_class:
            series = [dict(zip(labels, row, strict=True)) for row in values]
        drawn = plot_single_or_multi_val(
            series, ax=ax, higher_is_better=metric.higher_is_better, lower_bound=metric.plot_lower_bound, name=name
        )
    fig, axes = drawn
    return (axes.get_figure() if fig is None else fig), axes


def _pyplot() -> Any:
    """``matplotlib.pyplot``, or a ``ModuleNotFoundError`` that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ModuleNotFoundError(
            "`plot` needs matplotlib, which is not installed: `pip install matplotlib` (or the "
            "`xent-metrics[lightning]` extra, which includes it)."
        ) from err
    return plt


def _as_tensor(val: object) -> Tensor:
    """A value as a tensor, or a non-empty list of values as one tensor with the steps first."""
    if isinstance(val, Tensor):
        return val
    if isinstance(val, Sequence) and not isinstance(val, str) and len(val) and all(isinstance(v, Tensor) for v in val):
        shapes = {tuple(v.shape) for v in val}
        if len(shapes) == 1:
            return torch.stack([v.detach().cpu() for v in val])
        raise ValueError(f"`val` must be a list of values of one shape, got shapes {sorted(shapes)}.")
    raise TypeError(
        f"`val` must be a Tensor (a result of `compute()` or `forward`), a non-empty list of them, or None "
        f"(plot `compute()`), got {type(val).__name__}."
    )


def _labels(metric: Any, values: Tensor, per_class: bool, names: Sequence[str] | None) -> list[str]:
    """Class (or label) names for per-class values: ``names`` as given, else "Class 0", "Class 1", ..."""
    if names is None:
        count = values.shape[-1] if per_class else 0
        word = "Label" if hasattr(metric, "num_labels") else "Class"
        return [f"{word} {i}" for i in range(count)]
    if isinstance(names, str) or not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"`names` must be a list of str, one per class, got {names!r}.")
    if not per_class:
        raise ValueError(
            f"`names` labels per-class values, but this {type(metric).__name__} gives a single value; construct it "
            "with average='none' for one value per class, or leave `names` out."
        )
    if len(names) != values.shape[-1]:
        raise ValueError(f"`names` must have one name per class: {values.shape[-1]}, got {len(names)} names.")
    return list(names)


def _bars(ax: Axes, values: Tensor, labels: list[str], name: str, lower_bound: float) -> None:
    """One bar per class, named on the x axis; a class without data (nan) has no bar."""
    positions = range(len(labels))
    ax.bar(positions, values.numpy(), color="tab:blue")
    crowded = len(labels) > 8
    ax.set_xticks(list(positions), labels, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel(name)
    ax.set_ylim(bottom=lower_bound)
    ax.grid(True, axis="y")
