"""What a per-class monitor keeps between epochs, trainer calls and checkpoints, and how it is saved."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import Metric

from xent_metrics.metrics._layout import LAYOUT

_STATE_VERSION = 2  # records carry "run" and "fn" (and "dataloaders" with several); the state holds "run"


class MonitorRecords:
    """The checkpointed state of one monitor: in-progress metrics, history, warnings given, trainer-call count.

    Parameters
    ----------
    owner : str
        The monitor's class name, for messages.
    names_arg : str
        The monitor's argument that names the columns (``"labels"`` or ``"classes"``), for messages.
    labels : list of str
        One name per column.
    metrics : dict of str to Metric
        One metric per measured stage, holding the sums of the epoch in progress.
    """

    def __init__(self, owner: str, names_arg: str, labels: list[str], metrics: dict[str, Metric]) -> None:
        self.owner, self.names_arg, self.labels = owner, names_arg, labels
        self.metrics = metrics
        self.history: dict[str, list[dict[str, Any]]] = {stage: [] for stage in metrics}
        self.warned: set[str] = set()  # the keys of the warnings given once ("empty:val:cat", "sampler:val")
        self.run = 0  # counts the trainer calls (fit, validate, test) the monitor has been set up for

    def fit_records(self, stage: str) -> list[dict[str, Any]]:
        """The records of ``stage`` from the latest fit (not from a later ``validate``, not from an earlier fit)."""
        records = [r for r in self.history.get(stage, []) if r.get("fn", "fit") == "fit"]
        if not records:
            return []
        latest = records[-1].get("run")
        return [r for r in records if r.get("run") == latest]

    def state_dict(self) -> dict[str, Any]:
        """A plain dict (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "version": _STATE_VERSION,
            "labels": list(self.labels),
            "history": copy.deepcopy(self.history),
            "in_progress": {
                stage: {name: _saved(state) for name, state in metric.state_dict().items()}
                for stage, metric in self.metrics.items()
            },
            "warned": sorted(self.warned),
            "run": self.run,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; a key the state lacks keeps its default."""
        labels = state.get("labels", self.labels)
        if list(labels) != self.labels:
            raise ValueError(
                f"The checkpoint's {self.owner} state has {len(labels)} {self.names_arg} {list(labels)[:5]}, this "
                f"monitor {len(self.labels)} {self.labels[:5]}; give the same `{self.names_arg}` to resume, or "
                "another `prefix`."
            )
        for stage, states in state.get("in_progress", {}).items():  # first: it is the part that can be refused
            if stage in self.metrics:
                self._load_in_progress(stage, states)
        for stage, records in state.get("history", {}).items():
            if stage in self.history:
                self.history[stage] = copy.deepcopy(list(records))
        self.warned = set(state.get("warned", []))
        self.run = int(state.get("run", self.run))

    def _load_in_progress(self, stage: str, states: object) -> None:
        """Load a stage's saved sums through the metric's own checks (key present, shape, floating tensor)."""
        where = f"The checkpoint's {self.owner} state in_progress[{stage!r}]"
        if not isinstance(states, Mapping):
            raise ValueError(f"{where} must map state names to tensors (e.g. {{'sums': tensor}}), got {states!r}.")
        metric = self.metrics[stage]
        missing = [name for name in metric.state_dict() if name not in states and name != LAYOUT]  # layout: optional
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            raise ValueError(f"{where} has no {names} (it holds {sorted(states)}); it was saved by another layout.")
        try:
            metric.load_state_dict(dict(states))  # the metric checks each tensor (shape, dtype) before any change
        except (RuntimeError, ValueError) as err:
            raise ValueError(
                f"{where} does not fit this monitor's {len(self.labels)} {self.names_arg} and options: {err} Resume "
                f"with the options it was saved with (`{self.names_arg}`, `input_format`, `ignore_index`, "
                "`error_bars`: a state saved without error bars loads only with error_bars=False)."
            ) from err


def _saved(state: object) -> object:
    """A metric's state as saved: a tensor on the CPU, or the layout's text as is."""
    return state if isinstance(state, str) else torch.as_tensor(state).detach().cpu().clone()
