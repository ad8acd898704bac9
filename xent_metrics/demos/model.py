"""A small multi-label LightningModule whose steps return ``{"loss", "preds", "target"}``."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor, nn


class MultiLabelMLP(pl.LightningModule):
    """A one-hidden-layer perceptron with one logit per label, trained with ``BCEWithLogitsLoss``.

    Every step returns ``{"loss": ..., "preds": logits, "target": labels}``, which is what
    :class:`~xent_metrics.callbacks.PerClassBCEMonitor` reads by default.

    Parameters
    ----------
    num_features : int, default=64
        Input size (the 8x8 digits).
    num_labels : int, default=7
        Output size: one logit per tag.
    hidden_dim : int, default=32
        Width of the hidden layer.
    lr : float, default=0.01
        Adam learning rate.

    Examples
    --------
    >>> model = MultiLabelMLP(num_features=4, num_labels=3, hidden_dim=5)
    >>> model(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, num_features: int = 64, num_labels: int = 7, hidden_dim: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(num_features, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_labels))
        self.loss_fn = nn.BCEWithLogitsLoss()

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``(N, num_labels)`` logits."""
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y.to(logits.dtype))
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        return {"loss": loss, "preds": logits.detach(), "target": y}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Return the loss, the logits and the targets of a training batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Return the loss, the logits and the targets of a validation batch."""
        return self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Return the loss, the logits and the targets of a test batch."""
        return self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the configured learning rate."""
        lr: float = self.hparams["lr"]
        return torch.optim.Adam(self.parameters(), lr=lr)
