"""The Metric classes where users put them: MetricCollection, ClasswiseWrapper, a LightningModule."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import cases
from torchmetrics import MetricCollection
from torchmetrics.wrappers import ClasswiseWrapper

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, MultilabelCrossEntropy
from xent_metrics.functional import (
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
)

RTOL = 1e-12


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=0.0, equal_nan=True)


def _batches(n_batches: int = 3, classes: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [cases.batch("multiclass", 8 + i, classes, generator=g, dtype=torch.float64) for i in range(n_batches)]


def test_metric_collection_forward_and_compute() -> None:
    collection = MetricCollection(
        {
            "xent": MulticlassCrossEntropy(4),
            "xent_per_class": MulticlassCrossEntropy(4, average="none"),
            "ne": MulticlassNormalizedEntropy(4),
            "xent_smooth": MulticlassCrossEntropy(4, label_smoothing=0.1),
        }
    )
    batches = _batches()
    collection.update(*batches[0])  # the first update forms the compute groups (states shared by reference)
    for preds, target in batches[1:]:  # then forward through the shared states
        out = collection(preds, target)
        _close(out["xent"], multiclass_cross_entropy(preds, target))
        _close(out["ne"], multiclass_normalized_entropy(preds, target))
    preds = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    result = collection.compute()
    _close(result["xent"], multiclass_cross_entropy(preds, target))
    _close(result["xent_per_class"], multiclass_cross_entropy(preds, target, average="none"))
    _close(result["ne"], multiclass_normalized_entropy(preds, target))
    _close(result["xent_smooth"], multiclass_cross_entropy(preds, target, label_smoothing=0.1))
    # identical options and state layouts give identical states: torchmetrics shares one update among them
    # (micro CE keeps (3, 1) totals, so it updates alone; smoothing changes the update)
    groups = sorted(sorted(g) for g in collection.compute_groups.values())
    assert groups == [["ne", "xent_per_class"], ["xent"], ["xent_smooth"]]
    collection.reset()
    assert all(m.update_count == 0 for m in collection.values())


def test_classwise_wrapper_around_average_none() -> None:
    labels = ["cat", "dog", "eel", "fox"]
    wrapped = ClasswiseWrapper(MulticlassCrossEntropy(4, average="none"), labels=labels, prefix="xent/")
    batches = _batches()
    for preds, target in batches:
        out = wrapped(preds, target)
        assert list(out) == [f"xent/{name}" for name in labels]
        per_class = multiclass_cross_entropy(preds, target, average="none")
        for i, name in enumerate(labels):
            _close(out[f"xent/{name}"], per_class[i])
    preds = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    expected = multiclass_cross_entropy(preds, target, average="none")
    result = wrapped.compute()
    for i, name in enumerate(labels):
        _close(result[f"xent/{name}"], expected[i])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_self_log_in_a_lightning_module(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(11)
    x_train, x_val = torch.randn(48, 6, generator=g), torch.randn(40, 6, generator=g)
    y_train, y_val = torch.randint(0, 2, (48, 3), generator=g), torch.randint(0, 2, (40, 3), generator=g)

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(6, 3)
            self.train_xent = MultilabelCrossEntropy(3)
            self.val_xent = MultilabelCrossEntropy(3)
            self.val_per_label = MultilabelCrossEntropy(3, average="none")

        def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
            x, y = batch
            logits = self.net(x)
            self.train_xent(logits.detach(), y)  # forward: accumulate, return the batch value
            self.log("train/xent", self.train_xent, on_step=False, on_epoch=True)
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())

        def validation_step(self, batch: tuple, batch_idx: int) -> None:
            x, y = batch
            logits = self.net(x)
            self.val_xent.update(logits, y)
            self.val_per_label.update(logits, y)
            self.log("val/xent", self.val_xent)  # Lightning calls compute() and reset() at epoch end

        def on_validation_epoch_end(self) -> None:
            per_label = self.val_per_label.compute()
            self.log_dict({f"val/xent_{i}": v for i, v in enumerate(per_label)})
            self.val_per_label.reset()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)  # frozen weights: the expected values are fixed

    model = Tiny()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=4,
        limit_val_batches=3,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        logger=CSVLogger(tmp_path, name="log"),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=12)
    val = DataLoader(TensorDataset(x_val, y_val), batch_size=16)  # 3 uneven batches: 16, 16, 8
    trainer.fit(model, train, val)

    with torch.no_grad():
        expected_train = multilabel_cross_entropy(model.net(x_train), y_train).item()
        expected_val = multilabel_cross_entropy(model.net(x_val), y_val).item()
        expected_labels = multilabel_cross_entropy(model.net(x_val), y_val, average="none").tolist()
    rows = _read_csv(Path(trainer.logger.log_dir) / "metrics.csv")  # type: ignore[union-attr]
    val_rows = [r for r in rows if r.get("val/xent")]
    train_rows = [r for r in rows if r.get("train/xent")]
    assert len(val_rows) == 2  # one per epoch, each from a freshly reset metric
    assert len(train_rows) == 2
    for row in val_rows:  # Lightning logs float32 scalars
        assert float(row["val/xent"]) == pytest.approx(expected_val, rel=1e-6)
        for i, value in enumerate(expected_labels):
            assert float(row[f"val/xent_{i}"]) == pytest.approx(value, rel=1e-6)
    for row in train_rows:
        assert float(row["train/xent"]) == pytest.approx(expected_train, rel=1e-6)
