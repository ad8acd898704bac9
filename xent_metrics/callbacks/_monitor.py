"""The shared machinery of the per-class monitors: updates, epoch ends, several dataloaders, history, checkpoints.

:class:`~xent_metrics.callbacks.PerClassBCEMonitor` (multi-label) and
:class:`~xent_metrics.callbacks.PerClassCEMonitor` (multiclass) differ only in the metric they own
and the words they use (label / class, BCE / CE); both are a thin subclass of ``PerClassMonitor``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics import Metric
from typing_extensions import override

from xent_metrics.callbacks import _output
from xent_metrics.callbacks._args import check_display_options, check_error_bars, flatten_loaders
from xent_metrics.callbacks._records import MonitorRecords
from xent_metrics.callbacks._render import HEATMAP_MAX_LABELS, worst_first
from xent_metrics.callbacks._sampler import sampler_mismatch
from xent_metrics.callbacks._sync_hint import ignore_sync_hint, remove_filter
from xent_metrics.functional._error_bars import independent_mean, interval

Stage = Literal["train", "val", "test"]
_STEP_NAMES = {"train": "training_step", "val": "validation_step", "test": "test_step"}


class PerClassMonitor(Callback):
    """Per-class cross-entropy of each stage and epoch; a subclass says which metric and which words.

    Subclasses set ``unit`` (``"label"`` or ``"class"``), ``names_arg``, ``loss`` (``"BCE"`` or
    ``"CE"``), ``_metric_class`` (the metric each stage keeps, built with one column per name), and
    hand their remaining keyword arguments to this ``__init__`` (LightningCLI follows ``**options`` into it); see
    :class:`~xent_metrics.callbacks.PerClassBCEMonitor` for the options and for what is logged,
    kept and saved. ``macro_interval`` says whether the macro mean gets an interval with
    ``error_bars=True``: only where each sample (cluster) falls in one class, so that the classes'
    estimates are independent.
    """

    unit = "label"
    names_arg = "labels"
    loss = "BCE"
    macro_interval = False
    _metric_class: type[Any]

    def __init__(
        self,
        labels: list[str],
        *,
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
        heatmap_max_labels: int | None = HEATMAP_MAX_LABELS,
        error_bars: bool = False,
        confidence: float = 0.95,
    ) -> None:
        self.labels, self.input_format = labels, input_format
        self.stages = check_display_options(stages, prefix, log_worst_k, max_table_rows, heatmap_max_labels)
        check_error_bars(error_bars, confidence)
        self.error_bars, self.confidence = error_bars, confidence
        self.ignore_index = ignore_index
        self.preds_key, self.target_key, self.prefix = preds_key, target_key, prefix
        self.log_worst_k, self.max_table_rows = log_worst_k, max_table_rows
        self.heatmap_max_labels = heatmap_max_labels
        self.print_table, self.save_heatmap = print_table, save_heatmap
        metrics = {stage: self._new_metric() for stage in self.stages}
        self.records = MonitorRecords(type(self).__name__, self.names_arg, labels, metrics)
        self.heatmap_path: Any = None
        self._loaders: dict[str, list[Metric]] = {}  # per-dataloader metrics while several run
        self._loader_records: dict[str, list[dict[str, Any] | None]] = {}
        self._hint_filter: tuple[object, ...] | None = None  # the warning filter this monitor added, while it runs

    def _new_metric(self) -> Metric:
        """A stage's metric: the subclass's ``_metric_class`` with one column per name (``average="none"``)."""
        return self._metric_class(
            len(self.labels),
            input_format=self.input_format,
            ignore_index=self.ignore_index,
            average="none",
            error_bars=self.error_bars,
        )

    @property
    def metrics(self) -> dict[str, Metric]:
        """One metric per measured stage, holding the sums of the epoch in progress."""
        return self.records.metrics

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        """One record per stage and epoch: ``{"epoch", "step", "values", "macro", "run", "fn"}``."""
        return self.records.history

    @property
    @override
    def state_key(self) -> str:
        # Lightning's helper: `{qualname}{kwargs!r}`, the key a checkpoint holds this monitor's state under.
        return self._generate_state_key(prefix=self.prefix, preds_key=self.preds_key, target_key=self.target_key)

    # ---- updates -------------------------------------------------------------------------------

    def _checked(self, stage: str, outputs: object) -> tuple[Any, Any]:
        """Read ``(preds, target)`` from a step's output, with errors that name the step and the keys."""
        step, name = _STEP_NAMES[stage], type(self).__name__
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"{name} reads `{self.preds_key}` and `{self.target_key}` from what `{step}` returns, "
                f"but it returned {type(outputs).__name__}; return a dict such as "
                f"{{'loss': loss, '{self.preds_key}': logits, '{self.target_key}': target}}."
            )
        missing = [key for key in (self.preds_key, self.target_key) if key not in outputs]
        if missing:
            raise ValueError(
                f"{name}(preds_key={self.preds_key!r}, target_key={self.target_key!r}) found no "
                f"{missing} in what `{step}` returned (keys {sorted(outputs)}); return them or set the keys."
            )
        preds, target = outputs[self.preds_key], outputs[self.target_key]
        count = len(self.labels)
        if isinstance(preds, Tensor) and (preds.ndim < 2 or preds.shape[1] != count):
            raise ValueError(
                f"{name} was given {count} `{self.names_arg}` ({self.labels[:5]}{', ...' if count > 5 else ''}) "
                f"but `{step}` returned `{self.preds_key}` of shape {tuple(preds.shape)}; expected (N, {count}): "
                "one name per output column."
            )
        preds = preds.detach() if isinstance(preds, Tensor) else preds
        return preds, target.detach() if isinstance(target, Tensor) else target

    def _update(self, stage: str, trainer: pl.Trainer, outputs: object, batch_idx: int, loader: int = 0) -> None:
        """Every batch end: add the step's output to the stage's metric (to its dataloader's, with several)."""
        if not self._measures(stage, trainer):
            return
        preds, target = self._checked(stage, outputs)
        per_loader = self._loaders.get(stage)
        if not per_loader:
            self.metrics[stage].update(preds, target)  # a non-tensor is refused there, with a TypeError naming it
            return
        self._finish_loaders_before(stage, loader, trainer.lightning_module)
        per_loader[loader].update(preds, target)
        counts = trainer.num_test_batches if stage == "test" else trainer.num_val_batches
        if batch_idx + 1 == counts[loader]:  # this rank's last batch of this dataloader
            self._finish_loader(stage, loader, trainer.lightning_module, in_its_context=True)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.records.run += 1
        for metric in self.metrics.values():
            metric.to(pl_module.device)
        if trainer.world_size > 1 and self._hint_filter is None:
            self._hint_filter = ignore_sync_hint(self.stages, self.prefix)  # until teardown: see _sync_hint.py

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hint_filter()

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._remove_hint_filter()  # Lightning calls no teardown hook when a trainer call fails

    def _remove_hint_filter(self) -> None:
        remove_filter(self._hint_filter)
        self._hint_filter = None

    # ---- the stage hooks: each names its stage; one method per kind does the work ------------------
    # (`pl_module: object` where a hook does not read it)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_evaluation("val", trainer)

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_evaluation("test", trainer)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: object, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._update("train", trainer, outputs, batch_idx)

    @override
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: object, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._update("val", trainer, outputs, batch_idx, dataloader_idx)

    @override
    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: object, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._update("test", trainer, outputs, batch_idx, dataloader_idx)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish("train", trainer, pl_module)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish("val", trainer, pl_module)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish("test", trainer, pl_module)

    def _measures(self, stage: str, trainer: pl.Trainer) -> bool:
        """Whether ``stage`` is measured now: one of ``stages``, and never the sanity-check validation."""
        return stage in self.metrics and not (stage == "val" and trainer.sanity_checking)

    # ---- several evaluation dataloaders ------------------------------------------------------------

    def _start_evaluation(self, stage: str, trainer: pl.Trainer) -> None:
        """Reset the stage; with several dataloaders, give each its own metric (the pooled one merges them)."""
        if not self._measures(stage, trainer):
            return
        loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
        self.metrics[stage].reset()
        self._check_sampler(stage, loaders)
        count = len(flatten_loaders(loaders))
        if count < 2:
            self._loaders.pop(stage, None)
            return
        self._loaders[stage] = [self._new_metric().to(trainer.lightning_module.device) for _ in range(count)]
        self._loader_records[stage] = [None] * count

    def _finish_loaders_before(self, stage: str, loader: int, pl_module: pl.LightningModule) -> None:
        """Finish, in order, the dataloaders before ``loader`` this rank saw no last batch of (empty, or unsized)."""
        for index in range(loader):
            if self._loader_records[stage][index] is None:
                self._finish_loader(stage, index, pl_module, in_its_context=False)

    def _finish_loader(self, stage: str, loader: int, pl_module: pl.LightningModule, *, in_its_context: bool) -> None:
        """Compute one dataloader's values (a collective, in dataloader order on every rank), merge, log."""
        metric = self._loaders[stage][loader]
        record = self._record(self._compute(metric))
        self.metrics[stage].merge_state(metric)  # the local sums: the pooled value is synced once, at epoch end
        metric.reset()
        self._loader_records[stage][loader] = record
        logged = self._logged(stage, record)
        if in_its_context:  # Lightning appends its `/dataloader_idx_N` and files the values under that dataloader
            pl_module.log_dict(logged, on_step=False, on_epoch=True, sync_dist=False, batch_size=1)
        else:
            suffixed = {f"{key}/dataloader_idx_{loader}": value for key, value in logged.items()}
            options: dict[str, Any] = {"sync_dist": False, "batch_size": 1, "add_dataloader_idx": False}
            pl_module.log_dict(suffixed, on_step=False, on_epoch=True, **options)

    # ---- epoch ends ------------------------------------------------------------------------------

    def _compute(self, metric: Metric) -> dict[str, Tensor]:
        """The synced per-class ``{"value"}`` (with error bars ``"stderr"``, ``"low"``, ``"high"``): a collective."""
        with warnings.catch_warnings():
            # No data at all: `_warn_empty` says so once per name, not at every epoch.
            warnings.filterwarnings("ignore", message="No samples with non-zero weight", category=UserWarning)
            if not self.error_bars:
                computed = {"value": metric.compute()}
            else:  # the package's metrics have it; torchmetrics' `Metric`, the declared type, does not
                computed = metric.compute_interval(self.confidence)  # type: ignore[operator]
        return {key: value.detach().to("cpu", torch.float64) for key, value in computed.items()}

    def _record(self, computed: dict[str, Tensor]) -> dict[str, Any]:
        """``{"values", "macro"}``; with error bars ``"stderr"``, ``"low"``, ``"high"`` per class, and the macro's."""
        per_class = computed["value"].tolist()
        valid = [v for v in per_class if not math.isnan(v)]
        record: dict[str, Any] = {"values": per_class, "macro": sum(valid) / len(valid) if valid else math.nan}
        if "stderr" in computed:
            record.update({key: computed[key].tolist() for key in ("stderr", "low", "high")})
        if "stderr" in computed and self.macro_interval:
            _, stderr = independent_mean(computed["value"], computed["stderr"])  # each sample in one class
            macro = interval(torch.tensor(record["macro"], dtype=torch.float64), stderr, self.confidence)
            record.update({f"macro_{key}": float(macro[key]) for key in ("stderr", "low", "high")})
        return record

    def _logged(self, stage: str, record: dict[str, Any]) -> dict[str, Tensor]:
        """``{stage}/{prefix}/{name}`` for the shown names and ``{stage}/{prefix}`` for the macro mean.

        With error bars also ``{stage}/{prefix}_low/{name}`` and ``{stage}/{prefix}_high/{name}``, and
        ``{stage}/{prefix}_low`` / ``_high`` for the macro mean where it has an interval.
        """
        values = record["values"]
        shown = range(len(self.labels)) if self.log_worst_k is None else worst_first(values)[: self.log_worst_k]
        base = f"{stage}/{self.prefix}"
        logged = {}
        for suffix, key in (("", "values"), ("_low", "low"), ("_high", "high")):
            if key in record:
                logged.update({f"{base}{suffix}/{self.labels[k]}": record[key][k] for k in shown})
            if f"macro{suffix}" in record:
                logged[f"{base}{suffix}"] = record[f"macro{suffix}"]
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in logged.items()}

    def _finish(self, stage: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Every epoch end: compute on every rank (a collective), record, log the synced values, reset."""
        if not self._measures(stage, trainer):
            return
        records = self._loader_records.get(stage) if self._loaders.get(stage) else None
        if records is not None:
            self._finish_loaders_before(stage, len(records), pl_module)  # any this rank saw no last batch of
        computed = self._record(self._compute(self.metrics[stage]))
        self.metrics[stage].reset()
        record = {"epoch": trainer.current_epoch, "step": trainer.global_step, **computed}
        fn = getattr(getattr(trainer, "state", None), "fn", None)  # "fit", "validate" or "test"
        record.update(run=self.records.run, fn=None if fn is None else str(fn.value))
        if records is not None:
            record["dataloaders"] = list(records)
            del self._loaders[stage], self._loader_records[stage]
        self.history[stage].append(record)
        self._warn_empty(stage, record["values"])
        pl_module.log_dict(self._logged(stage, record), on_step=False, on_epoch=True, sync_dist=False)

    def _warn_empty(self, stage: str, values: list[float]) -> None:
        """Warn once per name and stage when a label (class) had nothing to score."""
        empty = [self.labels[k] for k, v in enumerate(values) if math.isnan(v)]
        new = [name for name in empty if f"empty:{stage}:{name}" not in self.records.warned]
        if new:
            self.records.warned.update(f"empty:{stage}:{name}" for name in new)
            rank_zero_warn(
                f"{type(self).__name__}: {len(new)} {self.unit}(s) had no {stage} target left to score "
                f"(every entry equal to ignore_index={self.ignore_index}, or no data): {new[:10]}"
                f"{' ...' if len(new) > 10 else ''}; their {stage}/{self.prefix}/<{self.unit}> is logged as nan and "
                f"the macro mean skips them. Warned once per {self.unit}.",
                category=UserWarning,
            )

    def _check_sampler(self, stage: str, loaders: object) -> None:
        """Warn once when a distributed sampler pads (or drops) evaluation samples."""
        if f"sampler:{stage}" in self.records.warned:
            return
        for loader in flatten_loaders(loaders):
            samplers = [
                getattr(loader, "sampler", None),
                getattr(getattr(loader, "batch_sampler", None), "sampler", None),
            ]
            found = next((m for m in map(sampler_mismatch, samplers) if m is not None), None)
            if found is None:
                continue
            self.records.warned.add(f"sampler:{stage}")
            covered, size = found
            what = f"repeats {covered - size} sample(s)" if covered > size else f"drops {size - covered} sample(s)"
            rank_zero_warn(
                f"{type(self).__name__}: the {stage} DataLoader's DistributedSampler covers {covered} samples for a "
                f"data set of {size}: it {what}, which biases every distributed {stage} metric. Fix: "
                "`DataLoader(dataset, ..., sampler=xent_metrics.callbacks.UnpaddedDistributedSampler(dataset))` "
                "(Lightning keeps a DistributedSampler you pass).",
                category=UserWarning,
            )
            return

    # ---- end of fit ------------------------------------------------------------------------------

    def summary_table(self) -> str | None:
        """The end-of-fit table as text (validation if measured, else training); ``None`` before any epoch."""
        return _output.summary_table(self)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = _output.end_of_fit(self, trainer)
        if path is not None:
            self.heatmap_path = path

    # ---- checkpoints -----------------------------------------------------------------------------

    @override
    def state_dict(self) -> dict[str, Any]:
        return self.records.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.records.load_state_dict(state_dict)
