"""What the per-class monitors show at the end of fit: the table and the heatmap (a file), or why not.

Everything said goes through Lightning's ``rank_zero_info``, as Lightning's own ``ModelSummary`` table does: its
``lightning.pytorch`` logger shows INFO records on stderr by default, and follows the root logger's handlers when
logging is configured before Lightning is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from xent_metrics.callbacks._records import MonitorRecords
from xent_metrics.callbacks._render import format_table, heatmap_figure, save_png


class Shown(Protocol):
    """What the end of fit reads from a monitor: its records and its display options."""

    records: MonitorRecords
    labels: list[str]
    unit: str
    loss: str
    prefix: str
    print_table: bool
    save_heatmap: bool
    max_table_rows: int | None
    heatmap_max_labels: int | None
    log_worst_k: int | None

    def summary_table(self) -> str | None:
        """The end-of-fit table, ``None`` before any epoch."""


def summary_table(monitor: Shown) -> str | None:
    """The end-of-fit table (validation if measured, else training, else test); ``None`` before any epoch."""
    kept = monitor.records
    found = [(s, kept.fit_records(s) if s != "test" else kept.history.get(s, [])) for s in ("val", "train", "test")]
    stage, records = next(((s, r) for s, r in found if r), (None, []))
    if stage is None:
        return None
    train = kept.fit_records("train")
    return format_table(
        monitor.labels,
        records[0],
        records[-1],
        stage=stage,
        extra=train[-1] if stage == "val" and train else None,
        extra_stage="train",
        max_rows=monitor.max_table_rows,
        unit=monitor.unit,
        loss=monitor.loss,
    )


def why_no_file(trainer: pl.Trainer, log_dir: str | None) -> str | None:
    """Why nothing may be written (``fast_dev_run``, ``logger=False``, no log directory), or ``None``."""
    if getattr(trainer, "fast_dev_run", False):  # set by the Trainer's __init__
        return "fast_dev_run is on (Lightning writes no logs or checkpoints then)"
    if not trainer.loggers:
        return "the trainer has no logger (logger=False)"
    if log_dir is None:
        return f"the logger {type(trainer.loggers[0]).__name__} has no log directory"
    return None


def end_of_fit(monitor: Shown, trainer: pl.Trainer) -> Path | None:
    """Show the table and save the heatmap (rank zero), or say where the heatmap would have gone; return its path."""
    log_dir = trainer.log_dir  # a broadcast: every rank must ask
    if not trainer.is_global_zero:
        return None
    table = monitor.summary_table() if monitor.print_table else None
    if table is not None:
        rank_zero_info(table)
    stage = next((s for s in ("val", "train") if monitor.records.fit_records(s)), None)
    if not monitor.save_heatmap or stage is None:
        return None
    name = f"{monitor.prefix}_per_{monitor.unit}_{stage}.png"
    reason = why_no_file(trainer, log_dir)
    if reason is not None:
        where = Path(log_dir or trainer.default_root_dir) / name
        rank_zero_info(f"{type(monitor).__name__}: no heatmap written: {reason}; it would have gone to {where}.")
        return None
    records = monitor.records.fit_records(stage)
    fig = heatmap_figure(
        monitor.labels,
        records,
        stage=stage,
        prefix=monitor.prefix,
        unit=monitor.unit,
        loss=monitor.loss,
        max_labels=monitor.heatmap_max_labels,
        worst_k=monitor.log_worst_k,
    )
    path = save_png(fig, Path(str(log_dir)) / name)
    rank_zero_info(f"Per-{monitor.unit} {stage} {monitor.loss} heatmap: {path}")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(f"{stage}/{monitor.prefix}/heatmap", fig, trainer.global_step, close=False)
    return path
