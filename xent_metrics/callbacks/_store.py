"""Checkpoint state of the per-class monitors: history, in-progress sums, warnings given, the trainer-call count."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from xent_metrics.metrics._layout import LAYOUT

if TYPE_CHECKING:
    from xent_metrics.callbacks._monitor import PerClassMonitor

_STATE_VERSION = 2  # 2: records carry "run" and "fn" (and "dataloaders" with several), the state holds "run"


def state_dict(monitor: PerClassMonitor) -> dict[str, Any]:
    """A plain dict (loadable with ``torch.load(weights_only=True)``)."""
    return {
        "version": _STATE_VERSION,
        "labels": list(monitor.labels),
        "history": copy.deepcopy(monitor.history),
        "in_progress": {
            stage: {name: _saved(state) for name, state in metric.state_dict().items()}
            for stage, metric in monitor.metrics.items()
        },
        "warned": sorted(monitor._warned),
        "run": monitor.run,
    }


def _saved(state: object) -> object:
    """A metric's state as saved: a tensor on the CPU, or the layout's text as is."""
    return state if isinstance(state, str) else torch.as_tensor(state).detach().cpu().clone()


def load_state_dict(monitor: PerClassMonitor, state: dict[str, Any]) -> None:
    """Restore what :func:`state_dict` saved; keys an older version lacks keep their defaults."""
    name, labels = type(monitor).__name__, state.get("labels", monitor.labels)
    if list(labels) != monitor.labels:
        raise ValueError(
            f"The checkpoint's {name} state has {len(labels)} {monitor.names_arg} {list(labels)[:5]}, this monitor "
            f"{len(monitor.labels)} {monitor.labels[:5]}; give the same `{monitor.names_arg}` to resume, or another "
            "`prefix`."
        )
    for stage, states in state.get("in_progress", {}).items():  # first: it is the part that can be refused
        if stage in monitor.metrics:
            _load_in_progress(monitor, stage, states)
    for stage, records in state.get("history", {}).items():
        if stage in monitor.history:
            monitor.history[stage] = copy.deepcopy(list(records))
    monitor._warned = set(state.get("warned", []))
    monitor.run = int(state.get("run", monitor.run))


def _load_in_progress(monitor: PerClassMonitor, stage: str, states: object) -> None:
    """Load a stage's saved sums through the metric's own checks (key present, shape, floating tensor)."""
    where = f"The checkpoint's {type(monitor).__name__} state in_progress[{stage!r}]"
    if not isinstance(states, Mapping):
        raise ValueError(f"{where} must map state names to tensors (e.g. {{'sums': tensor}}), got {states!r}.")
    metric = monitor.metrics[stage]
    missing = [name for name in metric.state_dict() if name not in states and name != LAYOUT]  # older: no layout
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        raise ValueError(f"{where} has no {names} (it holds {sorted(states)}); it was saved by another layout.")
    try:
        metric.load_state_dict(dict(states))  # the metric checks each tensor (shape, dtype) before any change
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{where} does not fit this monitor's {len(monitor.labels)} {monitor.names_arg}: {err}"
        ) from err
