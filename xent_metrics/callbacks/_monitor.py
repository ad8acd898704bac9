"""``PerClassBCEMonitor``: per-label binary cross-entropy of a multi-label model, logged every epoch."""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from xent_metrics.callbacks._args import check_labels, check_options, flatten_loaders
from xent_metrics.callbacks._render import format_table, heatmap_figure, save_png, worst_first
from xent_metrics.callbacks._sampler import sampler_mismatch
from xent_metrics.metrics import MultilabelCrossEntropy

Stage = Literal["train", "val", "test"]
_STEP_NAMES = {"train": "training_step", "val": "validation_step", "test": "test_step"}
_STATE_VERSION = 1


class PerClassBCEMonitor(Callback):
    r"""Log the binary cross-entropy of every label of a multi-label model, per stage and epoch.

    Each stage (train / val / test) owns one
    :class:`~xent_metrics.metrics.MultilabelCrossEntropy` (``average="none"``), updated from what
    each step returns (``outputs[preds_key]``, ``outputs[target_key]``). At each epoch end it is
    computed on every rank (the collective sync), and the synced values are logged through the
    module's loggers as ``{stage}/{prefix}/{label}`` and ``{stage}/{prefix}`` (the macro mean over
    labels with data), then reset. The history of every epoch is kept for the end-of-fit table and
    heatmap and saved in checkpoints.

    Parameters
    ----------
    labels : list of str, optional
        One name per model output column; checked against ``preds.shape[1]``.
    num_labels : int, optional
        The number of labels, when there are no names (they become ``"0"``, ``"1"``, ...).
    input_format : {"logits", "probs", "log_probs"}, default="logits"
        How to read ``preds``.
    stages : list of {"train", "val", "test"}, optional
        Where to measure; all three by default. Sanity-check validation is never counted.
    preds_key, target_key : str, default="preds", "target"
        Where the step's returned mapping holds the ``(N, K)`` scores and targets.
    ignore_index : int, optional
        Target entries equal to it are left out of their label's mean. A label whose every target
        was ignored logs ``nan`` (and one warning).
    prefix : str, default="bce"
        The middle part of the logged keys.
    log_worst_k : int, optional
        Log only the ``k`` worst labels of each epoch (plus the macro mean); the table, the heatmap
        and the history still hold every label. For models with thousands of labels.
    print_table : bool, default=True
        At the end of fit, print the per-label table (worst first, with the change since the first
        epoch) on rank zero.
    save_heatmap : bool, default=True
        At the end of fit, save a heatmap of per-label validation BCE over epochs as
        ``{trainer.log_dir}/{prefix}_per_label_val.png`` (training BCE when there is no
        validation), and add it to TensorBoard when a ``TensorBoardLogger`` is attached.
    max_table_rows : int, optional, default=30
        The most labels the table prints (the worst ones); ``None`` prints all.

    Raises
    ------
    TypeError
        ``labels`` not a list of str, a count not an int, a step output that is not a mapping.
    ValueError
        Neither ``labels`` nor ``num_labels``, duplicate or empty names, a length that disagrees
        with ``num_labels`` or with the model's ``preds``, an unknown stage, a missing output key.

    Notes
    -----
    Several validation (or test) dataloaders are pooled into one value per label. The values are
    computed (and synced) by the metric, so they are logged with ``sync_dist=False``; under DDP the
    monitor silences Lightning's "use ``sync_dist=True``" hint for its own keys only.

    Under DDP, Lightning's default ``DistributedSampler`` pads the evaluation shards with duplicate
    samples, which biases every evaluation metric; the monitor warns once when it sees this. The
    fix is one line: pass ``sampler=xent_metrics.callbacks.UnpaddedDistributedSampler(dataset)``
    to the evaluation ``DataLoader`` (Lightning keeps a ``DistributedSampler`` you give it).

    Checkpoints hold the per-epoch history and the in-progress sums, so resuming from a checkpoint
    gives the uninterrupted history. (Resuming *inside* an epoch is exact only with a resumable
    training dataloader: Lightning restarts a plain one from its first batch, and warns.)

    Examples
    --------
    >>> from xent_metrics.callbacks import PerClassBCEMonitor
    >>> monitor = PerClassBCEMonitor(labels=["cat", "dog"], stages=["val"], log_worst_k=1)
    >>> monitor.state_key
    "PerClassBCEMonitor{'prefix': 'bce', 'preds_key': 'preds', 'target_key': 'target'}"
    """

    def __init__(
        self,
        labels: list[str] | None = None,
        num_labels: int | None = None,
        input_format: Literal["logits", "probs", "log_probs"] = "logits",
        stages: list[Stage] | None = None,
        preds_key: str = "preds",
        target_key: str = "target",
        ignore_index: int | None = None,
        prefix: str = "bce",
        log_worst_k: int | None = None,
        print_table: bool = True,
        save_heatmap: bool = True,
        max_table_rows: int | None = 30,
    ) -> None:
        self.labels = check_labels(labels, num_labels)
        self.num_labels = len(self.labels)
        self.stages = check_options(stages, prefix, log_worst_k, max_table_rows)
        self.input_format, self.ignore_index = input_format, ignore_index
        self.preds_key, self.target_key, self.prefix = preds_key, target_key, prefix
        self.log_worst_k, self.max_table_rows = log_worst_k, max_table_rows
        self.print_table, self.save_heatmap = print_table, save_heatmap
        self.metrics = {
            stage: MultilabelCrossEntropy(
                self.num_labels, input_format=input_format, ignore_index=ignore_index, average="none"
            )
            for stage in self.stages
        }
        self.history: dict[str, list[dict[str, Any]]] = {stage: [] for stage in self.stages}
        self.heatmap_path: Path | None = None
        self._warned: set[str] = set()

    @property
    @override
    def state_key(self) -> str:
        ids = {"prefix": self.prefix, "preds_key": self.preds_key, "target_key": self.target_key}
        return f"{type(self).__qualname__}{ids!r}"

    # ---- updates -------------------------------------------------------------------------------

    def _update(self, stage: str, outputs: object) -> None:
        step = _STEP_NAMES[stage]
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"PerClassBCEMonitor reads `{self.preds_key}` and `{self.target_key}` from what `{step}` returns, "
                f"but it returned {type(outputs).__name__}; return a dict such as "
                f"{{'loss': loss, '{self.preds_key}': logits, '{self.target_key}': target}}."
            )
        missing = [key for key in (self.preds_key, self.target_key) if key not in outputs]
        if missing:
            raise ValueError(
                f"PerClassBCEMonitor(preds_key={self.preds_key!r}, target_key={self.target_key!r}) found no "
                f"{missing} in what `{step}` returned (keys {sorted(outputs)}); return them or set the keys."
            )
        preds, target = outputs[self.preds_key], outputs[self.target_key]
        if isinstance(preds, Tensor) and (preds.ndim < 2 or preds.shape[1] != self.num_labels):
            raise ValueError(
                f"PerClassBCEMonitor was given {self.num_labels} `labels` ({self.labels[:5]}"
                f"{', ...' if self.num_labels > 5 else ''}) but `{step}` returned `{self.preds_key}` of shape "
                f"{tuple(preds.shape)}; expected (N, {self.num_labels}): one name per output column."
            )
        detached = [value.detach() if isinstance(value, Tensor) else value for value in (preds, target)]
        self.metrics[stage].update(*detached)  # a non-tensor is refused there, with a TypeError naming it

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for metric in self.metrics.values():
            metric.to(pl_module.device)
        if trainer.world_size > 1:
            # Lightning suggests `sync_dist=True` for every epoch-level value logged without it; ours are already
            # synced by `compute()` (one collective), and syncing each scalar again would cost K + 1 collectives.
            keys = rf"({'|'.join(self.stages)})/{re.escape(self.prefix)}(/[^']*)?"
            message = rf"It is recommended to use `self\.log\('{keys}', \.\.\., sync_dist=True\)`"
            warnings.filterwarnings("ignore", message=message, category=PossibleUserWarning)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if "train" in self.metrics:
            self._update("train", outputs)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "val" in self.metrics and not trainer.sanity_checking:
            self.metrics["val"].reset()
            self._check_sampler("val", trainer.val_dataloaders)

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "val" in self.metrics and not trainer.sanity_checking:
            self._update("val", outputs)

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.metrics:
            self.metrics["test"].reset()
            self._check_sampler("test", trainer.test_dataloaders)

    @override
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "test" in self.metrics:
            self._update("test", outputs)

    # ---- epoch ends ------------------------------------------------------------------------------

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "train" in self.metrics:
            self._finish("train", trainer, pl_module)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "val" in self.metrics and not trainer.sanity_checking:
            self._finish("val", trainer, pl_module)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.metrics:
            self._finish("test", trainer, pl_module)

    def _finish(self, stage: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compute on every rank (a collective), record, log the synced values, reset."""
        metric = self.metrics[stage]
        with warnings.catch_warnings():
            # No data at all: `_warn_empty` below says so once per label, not at every epoch.
            warnings.filterwarnings("ignore", message="No samples with non-zero weight", category=UserWarning)
            values = metric.compute().detach().to("cpu", torch.float64)
        metric.reset()
        per_label = values.tolist()
        valid = [v for v in per_label if not math.isnan(v)]
        macro = sum(valid) / len(valid) if valid else math.nan
        self.history[stage].append(
            {"epoch": trainer.current_epoch, "step": trainer.global_step, "values": per_label, "macro": macro}
        )
        self._warn_empty(stage, per_label)
        shown = range(self.num_labels) if self.log_worst_k is None else worst_first(per_label)[: self.log_worst_k]
        logged = {f"{stage}/{self.prefix}/{self.labels[k]}": values[k] for k in shown}
        logged[f"{stage}/{self.prefix}"] = torch.tensor(macro, dtype=torch.float64)
        pl_module.log_dict(logged, on_step=False, on_epoch=True, sync_dist=False)

    def _warn_empty(self, stage: str, per_label: list[float]) -> None:
        """Warn once per label and stage when a label had nothing to score."""
        empty = [self.labels[k] for k, v in enumerate(per_label) if math.isnan(v)]
        new = [label for label in empty if f"empty:{stage}:{label}" not in self._warned]
        if new:
            self._warned.update(f"empty:{stage}:{label}" for label in new)
            rank_zero_warn(
                f"PerClassBCEMonitor: {len(new)} label(s) had no {stage} target left to score "
                f"(every entry equal to ignore_index={self.ignore_index}, or no data): {new[:10]}"
                f"{' ...' if len(new) > 10 else ''}; their {stage}/{self.prefix}/<label> is logged as nan and the "
                "macro mean skips them. Warned once per label.",
                category=UserWarning,
            )

    def _check_sampler(self, stage: str, loaders: object) -> None:
        """Warn once when a distributed sampler pads (or drops) evaluation samples."""
        if f"sampler:{stage}" in self._warned:
            return
        for loader in flatten_loaders(loaders):
            samplers = [
                getattr(loader, "sampler", None),
                getattr(getattr(loader, "batch_sampler", None), "sampler", None),
            ]
            found = next((m for m in map(sampler_mismatch, samplers) if m is not None), None)
            if found is None:
                continue
            self._warned.add(f"sampler:{stage}")
            covered, size = found
            what = f"repeats {covered - size} sample(s)" if covered > size else f"drops {size - covered} sample(s)"
            rank_zero_warn(
                f"PerClassBCEMonitor: the {stage} DataLoader's DistributedSampler covers {covered} samples for a "
                f"data set of {size}: it {what}, which biases every distributed {stage} metric. Fix: "
                "`DataLoader(dataset, ..., sampler=xent_metrics.callbacks.UnpaddedDistributedSampler(dataset))` "
                "(Lightning keeps a DistributedSampler you pass).",
                category=UserWarning,
            )
            return

    # ---- end of fit ------------------------------------------------------------------------------

    def summary_table(self) -> str | None:
        """The end-of-fit table as text (validation if measured, else training); ``None`` before any epoch."""
        stage = next((s for s in ("val", "train", "test") if self.history.get(s)), None)
        if stage is None:
            return None
        records = self.history[stage]
        extra = self.history["train"][-1] if stage == "val" and self.history.get("train") else None
        return format_table(
            self.labels,
            records[0],
            records[-1],
            stage=stage,
            extra=extra,
            extra_stage="train",
            max_rows=self.max_table_rows,
        )

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir  # a broadcast: every rank must ask
        if not trainer.is_global_zero:
            return
        table = self.summary_table() if self.print_table else None
        if table is not None:
            print(table)
        stage = next((s for s in ("val", "train") if self.history.get(s)), None)
        if self.save_heatmap and stage is not None:
            fig = heatmap_figure(self.labels, self.history[stage], stage=stage, prefix=self.prefix)
            self.heatmap_path = save_png(fig, Path(log_dir or ".") / f"{self.prefix}_per_label_{stage}.png")
            print(f"Per-label {stage} BCE heatmap: {self.heatmap_path}")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure(
                        f"{stage}/{self.prefix}/heatmap", fig, trainer.global_step, close=False
                    )

    # ---- checkpoints -----------------------------------------------------------------------------

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "labels": list(self.labels),
            "history": copy.deepcopy(self.history),
            "in_progress": {
                stage: {
                    name: torch.as_tensor(state).detach().cpu().clone() for name, state in metric.state_dict().items()
                }
                for stage, metric in self.metrics.items()
            },
            "warned": sorted(self._warned),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        labels = state_dict.get("labels", self.labels)
        if list(labels) != self.labels:
            raise ValueError(
                f"The checkpoint's PerClassBCEMonitor state has {len(labels)} labels {list(labels)[:5]}, this monitor "
                f"{self.num_labels} {self.labels[:5]}; give the same `labels` to resume, or another `prefix`."
            )
        for stage, states in state_dict.get("in_progress", {}).items():  # first: it is the part that can be refused
            if stage in self.metrics:
                self._load_in_progress(stage, states)
        for stage, records in state_dict.get("history", {}).items():
            if stage in self.history:
                self.history[stage] = copy.deepcopy(list(records))
        self._warned = set(state_dict.get("warned", []))

    def _load_in_progress(self, stage: str, states: object) -> None:
        """Load a stage's saved sums through the metric's own checks (key present, shape, floating tensor)."""
        where = f"The checkpoint's PerClassBCEMonitor state in_progress[{stage!r}]"
        if not isinstance(states, Mapping):
            raise ValueError(f"{where} must map state names to tensors (e.g. {{'sums': tensor}}), got {states!r}.")
        metric = self.metrics[stage]
        missing = [name for name in metric.state_dict() if name not in states]
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            raise ValueError(f"{where} has no {names} (it holds {sorted(states)}); it was saved by another layout.")
        try:
            metric.load_state_dict(dict(states))  # the metric checks each tensor (shape, dtype) before any change
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{where} does not fit this monitor's {len(self.labels)} labels: {err}") from err
