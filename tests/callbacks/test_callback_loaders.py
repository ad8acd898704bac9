"""The monitors with several evaluation dataloaders, repeated trainer calls, and runs that write no files."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.lightning import PassThrough, trainer
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor

# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")


class Unsized(IterableDataset):
    """A dataset without ``__len__``: Lightning cannot tell its last batch in advance."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y, strict=True))


def bce(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return F.binary_cross_entropy_with_logits(x.double(), y.double(), reduction="none").mean(0).numpy()


def sets() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    return [(torch.randn(n, 2, generator=gen) * 1.7, torch.randint(0, 2, (n, 2), generator=gen)) for n in (10, 7)]


def run(root: Path, monitor: PerClassBCEMonitor, **kwargs) -> pl.Trainer:
    return trainer(
        root, [monitor], **{"limit_val_batches": None, "num_sanity_val_steps": 0, "limit_train_batches": None, **kwargs}
    )


def test_two_val_dataloaders_validate_after_fit_and_a_second_fit(tmp_path: Path) -> None:
    (x0, y0), (x1, y1) = sets()
    expected = [bce(x0, y0), bce(x1, y1)]
    pooled = bce(torch.cat([x0, x1]), torch.cat([y0, y1]))
    assert not np.allclose(expected[0], expected[1])
    loaders = [DataLoader(TensorDataset(x0, y0), batch_size=4), DataLoader(TensorDataset(x1, y1), batch_size=3)]
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], print_table=False, save_heatmap=False)
    trainer = run(tmp_path, monitor)
    trainer.fit(PassThrough("preds", "target"), train_dataloaders=loaders[0], val_dataloaders=loaders)

    frame = pd.read_csv(tmp_path / "metrics.csv")
    rows = frame[frame["val/bce"].notna()].reset_index(drop=True)
    assert len(rows) == 2
    for i in (0, 1):
        got = rows[[f"val/bce/a/dataloader_idx_{i}", f"val/bce/b/dataloader_idx_{i}"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, [expected[i]] * 2, rtol=1e-6)
        np.testing.assert_allclose(rows[f"val/bce/dataloader_idx_{i}"], expected[i].mean(), rtol=1e-6)
    np.testing.assert_allclose(rows[["val/bce/a", "val/bce/b"]].to_numpy(dtype=float), [pooled] * 2, rtol=1e-6)
    for record in monitor.history["val"]:
        np.testing.assert_allclose(record["values"], pooled, rtol=1e-6)
        np.testing.assert_allclose([d["values"] for d in record["dataloaders"]], expected, rtol=1e-6)

    results = trainer.validate(PassThrough("preds", "target"), dataloaders=loaders, verbose=False)
    assert len(results) == 2
    for i, result in enumerate(results):  # each dataloader's dict holds its own values (and the pooled ones)
        assert result[f"val/bce/a/dataloader_idx_{i}"] == pytest.approx(expected[i][0], rel=1e-6)
        assert f"val/bce/a/dataloader_idx_{1 - i}" not in result
        assert result["val/bce/a"] == pytest.approx(pooled[0], rel=1e-6)

    second = run(tmp_path / "second", monitor, max_epochs=1)
    second.fit(PassThrough("preds", "target"), train_dataloaders=loaders[0], val_dataloaders=loaders[1])
    keys = [(r["run"], r["fn"], r["epoch"]) for r in monitor.history["val"]]
    assert keys == [(1, "fit", 0), (1, "fit", 1), (2, "validate", 2), (3, "fit", 0)]
    assert "dataloaders" not in monitor.history["val"][-1]  # one dataloader: the pooled values only
    np.testing.assert_allclose(monitor.history["val"][-1]["values"], expected[1], rtol=1e-6)
    table = monitor.summary_table()
    assert table is not None and "val epoch 0, worst first (change since epoch 0)" in table  # the latest fit only


def test_an_unsized_dataloader_is_finished_at_the_next_ones_first_batch(tmp_path: Path) -> None:
    (x0, y0), (x1, y1) = sets()
    unsized = DataLoader(Unsized(x0, y0), batch_size=4)
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], print_table=False, save_heatmap=False)
    trainer = run(tmp_path, monitor, max_epochs=1)
    loaders = [unsized, DataLoader(TensorDataset(x1, y1), batch_size=3)]
    trainer.fit(
        PassThrough("preds", "target"), train_dataloaders=DataLoader(TensorDataset(x1, y1)), val_dataloaders=loaders
    )
    (record,) = monitor.history["val"]
    np.testing.assert_allclose([d["values"] for d in record["dataloaders"]], [bce(x0, y0), bce(x1, y1)], rtol=1e-6)
    rows = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["val/bce"])
    assert rows["val/bce/a/dataloader_idx_0"].item() == pytest.approx(bce(x0, y0)[0], rel=1e-6)


@pytest.mark.parametrize(
    ("how", "reason"),
    [({"fast_dev_run": True}, "fast_dev_run is on"), ({"logger": False}, r"no logger \(logger=False\)")],
    ids=["fast_dev_run", "logger_false"],
)
def test_no_heatmap_file_without_a_log_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: dict, reason: str
) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # where the heatmap used to land under fast_dev_run
    x, y = torch.randn(12, 3), torch.arange(12) % 3  # every class in every batch of 4 (fast_dev_run runs one)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    monitor = PerClassCEMonitor(num_classes=3, print_table=False)
    trainer = run(tmp_path / "root", monitor, max_epochs=1, **how)
    lightning_log = logging.getLogger("lightning.pytorch")  # Lightning's rank_zero_info: it may not propagate
    lightning_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
            trainer.fit(PassThrough("preds", "target"), train_dataloaders=loader, val_dataloaders=loader)
    finally:
        lightning_log.removeHandler(caplog.handler)
    assert monitor.history["val"] and monitor.heatmap_path is None
    assert not list(tmp_path.glob("**/*.png"))
    would = tmp_path / "root" / "ce_per_class_val.png"
    messages = sorted({r.getMessage() for r in caplog.records if "PerClassCEMonitor" in r.getMessage()})
    assert len(messages) == 1
    assert f"it would have gone to {would}." in messages[0]
    assert re.match(f"PerClassCEMonitor: no heatmap written: .*{reason}", messages[0])
