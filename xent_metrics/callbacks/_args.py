"""Argument checks of the per-class monitors (errors name the argument, the value seen and what is expected)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xent_metrics.functional._error_bars import normal_quantile

STAGES: tuple[str, ...] = ("train", "val", "test")


def check_labels(
    labels: object,
    num_labels: object,
    *,
    owner: str = "PerClassBCEMonitor",
    names: str = "labels",
    count: str = "num_labels",
) -> list[str]:
    """Return the names (``"0"``, ``"1"``, ... when only the count is given).

    ``owner``, ``names`` and ``count`` are the words of the messages: the class and its two arguments
    (``labels`` / ``num_labels`` for multi-label, ``classes`` / ``num_classes`` for multiclass).
    """
    if labels is None and num_labels is None:
        raise ValueError(f"{owner} needs `{names}` (a list of names) or `{count}` (an int); got neither.")
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int)):
        raise TypeError(f"`{count}` must be an int, got {type(num_labels).__name__} {num_labels!r}.")
    if num_labels is not None and num_labels < 1:
        raise ValueError(f"`{count}` must be at least 1, got {num_labels}.")
    if labels is None:
        return [str(k) for k in range(num_labels)]  # type: ignore[arg-type]
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not all(isinstance(x, str) for x in labels):
        raise TypeError(f"`{names}` must be a list of str, got {labels!r}.")
    if not labels or not all(labels):
        raise ValueError(f"`{names}` must be a non-empty list of non-empty names, got {list(labels)!r}.")
    duplicates = sorted({x for x in labels if list(labels).count(x) > 1})
    if duplicates:
        raise ValueError(f"`{names}` must be unique (they name the logged keys); {duplicates} appear more than once.")
    if num_labels is not None and num_labels != len(labels):
        raise ValueError(f"`{names}` has {len(labels)} names but `{count}`={num_labels}; give one name per entry.")
    return list(labels)


def check_display_options(
    stages: object, prefix: object, log_worst_k: object, max_table_rows: object, heatmap_max_labels: object
) -> list[str]:
    """Check the display options; return the stages in train, val, test order."""
    if stages is None:
        stages = list(STAGES)
    if isinstance(stages, str) or not isinstance(stages, Sequence) or not set(stages) <= set(STAGES) or not stages:
        raise ValueError(f"`stages` must be a non-empty list drawn from {list(STAGES)}, got {stages!r}.")
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"`prefix` must be a non-empty str, got {prefix!r}.")
    counts = {"log_worst_k": log_worst_k, "max_table_rows": max_table_rows, "heatmap_max_labels": heatmap_max_labels}
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"`{name}` must be an int or None, got {type(value).__name__} {value!r}.")
        if value is not None and value < 1:
            raise ValueError(f"`{name}` must be at least 1 (or None for all labels), got {value}.")
    return [s for s in STAGES if s in stages]


def check_error_bars(error_bars: object, confidence: object) -> None:
    """Check ``error_bars`` (a bool) and ``confidence`` (a float in ``(0, 1)``, e.g. 0.95)."""
    if not isinstance(error_bars, bool):
        raise TypeError(
            f"`error_bars` must be a bool (true or false in YAML), got {type(error_bars).__name__} {error_bars!r}."
        )
    normal_quantile(confidence)  # the TypeError / ValueError naming `confidence` that compute_interval gives


def flatten_loaders(loaders: object) -> list[Any]:
    """Flatten what ``trainer.val_dataloaders`` / ``test_dataloaders`` return into a list."""
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return list(loaders)
    return [loaders]
