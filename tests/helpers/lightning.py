"""Shared pieces of the Lightning tests: a small CPU trainer logging to CSV, a module whose inputs are its scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger


def trainer(tmp_path: Path, callbacks: list, **kwargs: Any) -> pl.Trainer:
    """``Trainer(default_root_dir=tmp_path, limit_*_batches, CSVLogger(tmp_path), no progress bar)``; ``kwargs`` win."""
    options = dict(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        log_every_n_steps=1,
    )
    return pl.Trainer(callbacks=callbacks, **{**options, **kwargs})


class PassThrough(pl.LightningModule):
    """Its inputs are the predictions: what a monitor sees is fixed by the data, whatever the training."""

    def __init__(self, preds_key: str = "scores", target_key: str = "labels") -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.keys = (preds_key, target_key)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        preds, target = self.keys
        return {"loss": (self.weight - 1) ** 2 + 0 * x.sum(), preds: x + 0 * self.weight, target: y}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._step(batch)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return self._step(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)
