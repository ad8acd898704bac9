"""What the per-class monitors show at the end of fit: the table and the heatmap (a file), or why not.

Everything said goes through Lightning's ``rank_zero_info``, as Lightning's own ``ModelSummary`` table does: its
``lightning.pytorch`` logger shows INFO records on stderr by default, and follows the root logger's handlers when
logging is configured before Lightning is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from xent_metrics.callbacks._render import format_table, heatmap_figure, save_png

if TYPE_CHECKING:
    from xent_metrics.callbacks._monitor import PerClassMonitor


def fit_records(monitor: PerClassMonitor, stage: str) -> list[dict[str, Any]]:
    """The records of ``stage`` from the latest fit (not from a later ``validate``, not from an earlier fit)."""
    records = [r for r in monitor.history.get(stage, []) if r.get("fn", "fit") == "fit"]
    if not records:
        return []
    latest = records[-1].get("run")
    return [r for r in records if r.get("run") == latest]


def summary_table(monitor: PerClassMonitor) -> str | None:
    """The end-of-fit table (validation if measured, else training, else test); ``None`` before any epoch."""
    found = [
        (s, fit_records(monitor, s) if s != "test" else monitor.history.get(s, [])) for s in ("val", "train", "test")
    ]
    stage, records = next(((s, r) for s, r in found if r), (None, []))
    if stage is None:
        return None
    train = fit_records(monitor, "train")
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


def end_of_fit(monitor: PerClassMonitor, trainer: pl.Trainer) -> None:
    """Show the table and save the heatmap (rank zero), or say where the heatmap would have gone."""
    log_dir = trainer.log_dir  # a broadcast: every rank must ask
    if not trainer.is_global_zero:
        return
    table = monitor.summary_table() if monitor.print_table else None
    if table is not None:
        rank_zero_info(table)
    stage = next((s for s in ("val", "train") if fit_records(monitor, s)), None)
    if not monitor.save_heatmap or stage is None:
        return
    name = f"{monitor.prefix}_per_{monitor.unit}_{stage}.png"
    reason = why_no_file(trainer, log_dir)
    if reason is not None:
        where = Path(log_dir or trainer.default_root_dir) / name
        rank_zero_info(f"{type(monitor).__name__}: no heatmap written: {reason}; it would have gone to {where}.")
        return
    records = fit_records(monitor, stage)
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
    monitor.heatmap_path = save_png(fig, Path(str(log_dir)) / name)
    rank_zero_info(f"Per-{monitor.unit} {stage} {monitor.loss} heatmap: {monitor.heatmap_path}")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(f"{stage}/{monitor.prefix}/heatmap", fig, trainer.global_step, close=False)
