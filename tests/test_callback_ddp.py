"""PerClassBCEMonitor under 2-process CPU DDP (gloo): logged values equal the single-process ones."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.dist import run_in_processes

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.demos.data import TAGS, DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP

LABELS = list(TAGS)
# 101 images: 25 for validation and 25 for test, odd sizes that 2 ranks cannot split evenly.
DATA = {"max_samples": 101, "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 8, "seed": 3}


class _UnsyncedLog(pl.Callback):
    """Logs a value without sync_dist: Lightning's "use sync_dist=True" hint must still fire for it."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("val/other", 1.0, sync_dist=False)


def _run(root: Path, *, unpadded: bool, strategy: object = "auto", devices: int = 1) -> PerClassBCEMonitor:
    """Fit 2 epochs (lr=0: the model stays at its seeded initialisation) and test; return the monitor."""
    torch.manual_seed(0)
    model = MultiLabelMLP(lr=0.0)
    monitor = PerClassBCEMonitor(labels=LABELS, print_table=False, save_heatmap=False)
    trainer = pl.Trainer(
        default_root_dir=root,
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        max_epochs=2,
        limit_train_batches=2,
        logger=pl.loggers.CSVLogger(root, name="", version=""),
        callbacks=[monitor, _UnsyncedLog()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    data = DigitTagsDataModule(**DATA, unpadded_eval_sampler=unpadded)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return monitor


def _ddp_worker(rank: int, world_size: int, root: str) -> dict:
    """Two DDP runs in the already-initialised gloo group: the unpadded sampler, then Lightning's default."""
    from lightning.pytorch.strategies import DDPStrategy

    os.environ["LOCAL_RANK"], os.environ["NODE_RANK"] = str(rank), "0"  # Lightning: processes launched externally
    out: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, unpadded in (("unpadded", True), ("padded", False)):
            strategy = DDPStrategy(process_group_backend="gloo")
            monitor = _run(Path(root) / name, unpadded=unpadded, strategy=strategy, devices=world_size)
            out[name] = monitor.history
    out["warnings"] = [str(w.message) for w in caught if "PerClassBCEMonitor" in str(w.message)]
    out["sync_hints"] = [str(w.message) for w in caught if "sync_dist=True" in str(w.message)]
    return out


def _logged(root: Path, stage: str) -> np.ndarray:
    frame = pd.read_csv(root / "metrics.csv")
    frame = frame[frame[f"{stage}/bce"].notna()]
    return frame[[f"{stage}/bce/{name}" for name in LABELS]].to_numpy(dtype=float)


@pytest.mark.distributed
@pytest.mark.timeout(240)
# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
def test_two_process_ddp_logs_the_single_process_values_on_an_odd_validation_set(tmp_path: Path) -> None:
    single = _run(tmp_path / "single", unpadded=True)
    ranks = run_in_processes(_ddp_worker, 2, timeout=180, root=str(tmp_path / "ddp"))

    # Independent reference: the seeded model on the 25 validation / 25 test images, BCE in float64.
    torch.manual_seed(0)
    model = MultiLabelMLP(lr=0.0)
    data = DigitTagsDataModule(**DATA)
    data.setup("fit")
    assert len(data.val_set) == len(data.test_set) == 25
    for stage, subset in (("val", data.val_set), ("test", data.test_set)):
        x, y = (torch.stack(t) for t in zip(*(subset[i] for i in range(len(subset))), strict=True))
        with torch.no_grad():
            expected = F.binary_cross_entropy_with_logits(model(x).double(), y.double(), reduction="none").mean(0)
        epochs = 2 if stage == "val" else 1
        np.testing.assert_allclose(_logged(tmp_path / "single", stage), [expected.numpy()] * epochs, rtol=1e-6)
        # The float32 forward of differently composed batches may differ in the last bit (~1e-9 relative);
        # one padded duplicate in 25 samples moves a label's value by ~1e-2.
        ddp_logged = _logged(tmp_path / "ddp" / "unpadded", stage)  # written by rank 0
        np.testing.assert_allclose(ddp_logged, _logged(tmp_path / "single", stage), rtol=1e-7)
        for out in ranks:  # every rank computed the same synced values
            got = [r["values"] for r in out["unpadded"][stage]]
            np.testing.assert_allclose(got, [r["values"] for r in single.history[stage]], rtol=1e-7)
            np.testing.assert_array_equal(got, [r["values"] for r in ranks[0]["unpadded"][stage]])
            # Lightning's default sampler pads 25 to 26 samples: a duplicate shifts every label's value.
            padded = np.array([r["values"] for r in out["padded"][stage]])
            assert np.abs(padded / expected.numpy() - 1).max() > 1e-3

    rank0, rank1 = (out["warnings"] for out in ranks)
    assert rank1 == []  # warnings come from rank zero only
    # Lightning's "use sync_dist=True" hint is silenced for the monitor's (already synced) keys only.
    assert any("'val/other'" in hint for hint in ranks[0]["sync_hints"])
    assert all("/bce" not in hint for hint in ranks[0]["sync_hints"])
    assert len(rank0) == 2  # one for val, one for test, in the padded run only
    assert all("covers 26 samples for a data set of 25: it repeats 1 sample" in message for message in rank0)
