"""The per-class monitors under 2-process CPU DDP (gloo): logged values equal the single-process ones."""

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
from helpers.error_bars import clustered_reference

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor
from xent_metrics.demos.data import TAGS, DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP

LABELS = list(TAGS)
# 101 images: 25 for validation and 25 for test, odd sizes that 2 ranks cannot split evenly.
DATA = {"max_samples": 101, "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 8, "seed": 3}


def _code(tags: torch.Tensor) -> torch.Tensor:
    """A 7-class target from the first three tags (every class occurs in the 25 val and 25 test images)."""
    return (tags[:, 0] + 2 * tags[:, 1] + 4 * tags[:, 2]) % 7


class _CodedMLP(MultiLabelMLP):
    """Also returns a class index per image, so that PerClassCEMonitor reads its 7 logits as a 7-class model."""

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        return {**super()._step(batch, stage), "code": _code(batch[1])}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        return self._step(batch, "val")  # takes dataloader_idx: Lightning requires it with several dataloaders


class _UnsyncedLog(pl.Callback):
    """Logs a value without sync_dist: Lightning's "use sync_dist=True" hint must still fire for it."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("val/other", 1.0, sync_dist=False)


def _run(root: Path, *, unpadded: bool, strategy: object = "auto", devices: int = 1) -> list:
    """Fit 2 epochs (lr=0: the model stays at its seeded initialisation) and test; return the two monitors."""
    torch.manual_seed(0)
    model = _CodedMLP(lr=0.0)
    monitor = PerClassBCEMonitor(labels=LABELS, print_table=False, save_heatmap=False)
    ce = PerClassCEMonitor(
        classes=LABELS,
        stages=["val", "test"],
        target_key="code",
        print_table=False,
        save_heatmap=False,
        error_bars=True,
    )
    trainer = pl.Trainer(
        default_root_dir=root,
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        max_epochs=2,
        limit_train_batches=2,
        logger=pl.loggers.CSVLogger(root, name="", version=""),
        callbacks=[monitor, ce, _UnsyncedLog()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    data = DigitTagsDataModule(**DATA, unpadded_eval_sampler=unpadded)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return [monitor, ce]


def _validate_two_loaders(strategy: object = "auto", devices: int = 1) -> tuple[list[dict], list[dict]]:
    """``trainer.validate`` on [val, test] loaders with a fresh PerClassCEMonitor: the returned dicts, the history."""
    torch.manual_seed(0)
    model, data = _CodedMLP(lr=0.0), DigitTagsDataModule(**DATA)
    data.setup("fit")
    ce = PerClassCEMonitor(
        classes=LABELS, stages=["val"], target_key="code", prefix="two", save_heatmap=False, error_bars=True
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        logger=False,
        callbacks=[ce],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = trainer.validate(model, dataloaders=[data.val_dataloader(), data.test_dataloader()], verbose=False)
    return results, ce.history["val"]


def _ddp_worker(rank: int, world_size: int, root: str) -> dict:
    """Two DDP runs in the already-initialised gloo group: the unpadded sampler, then Lightning's default."""
    from lightning.pytorch.strategies import DDPStrategy

    os.environ["LOCAL_RANK"], os.environ["NODE_RANK"] = str(rank), "0"  # Lightning: processes launched externally
    out: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        for name, unpadded in (("unpadded", True), ("padded", False)):
            strategy = DDPStrategy(process_group_backend="gloo")
            monitor, ce = _run(Path(root) / name, unpadded=unpadded, strategy=strategy, devices=world_size)
            out[name], out[f"{name}_ce"] = monitor.history, ce.history
        strategy = DDPStrategy(process_group_backend="gloo")
        out["two_loaders"] = _validate_two_loaders(strategy, world_size)  # uneven shards: 13 + 12 samples each
        out["filters_kept"] = warnings.filters == filters  # the monitors' sync-hint filters left with each call
    out["warnings"] = [str(w.message) for w in caught if "Monitor:" in str(w.message)]
    out["sync_hints"] = [str(w.message) for w in caught if "sync_dist=True" in str(w.message)]
    return out


def _logged(root: Path, stage: str, prefix: str = "bce") -> np.ndarray:
    frame = pd.read_csv(root / "metrics.csv")
    frame = frame[frame[f"{stage}/{prefix}"].notna()]
    return frame[[f"{stage}/{prefix}/{name}" for name in LABELS]].to_numpy(dtype=float)


def _logged_ce_reference(data: DigitTagsDataModule, subset: object) -> tuple[np.ndarray, np.ndarray]:
    """Per-class CE of the seeded model on ``subset`` in float64, and each class's sample count."""
    torch.manual_seed(0)
    model = _CodedMLP(lr=0.0)
    x, y = (torch.stack(t) for t in zip(*(subset[i] for i in range(len(subset))), strict=True))
    with torch.no_grad():
        losses = F.cross_entropy(model(x).double(), _code(y), reduction="none")
    code = _code(y)
    return (
        np.array([losses[code == c].mean().item() for c in range(len(LABELS))]),
        np.array([(code == c).sum().item() for c in range(len(LABELS))]),
    )


def _clustered_stderr(losses: np.ndarray) -> float:
    """numpy's clustered standard error of the mean of ``losses``, one cluster each; ``nan`` for one cluster."""
    return clustered_reference(np.ones(len(losses)), losses)[1] if len(losses) > 1 else float("nan")


def _pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-class means over the union of the parts, from their means and counts."""
    return sum(mean * count for mean, count in parts) / sum(count for _, count in parts)


@pytest.mark.distributed
@pytest.mark.timeout(240)
# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
def test_two_process_ddp_logs_the_single_process_values_on_an_odd_validation_set(tmp_path: Path) -> None:
    single, single_ce = _run(tmp_path / "single", unpadded=True)
    ranks = run_in_processes(_ddp_worker, 2, timeout=180, root=str(tmp_path / "ddp"))

    # Independent reference: the seeded model on the 25 validation / 25 test images, BCE in float64.
    torch.manual_seed(0)
    model = _CodedMLP(lr=0.0)
    data = DigitTagsDataModule(**DATA)
    data.setup("fit")
    assert len(data.val_set) == len(data.test_set) == 25
    for stage, subset in (("val", data.val_set), ("test", data.test_set)):
        x, y = (torch.stack(t) for t in zip(*(subset[i] for i in range(len(subset))), strict=True))
        with torch.no_grad():
            expected = F.binary_cross_entropy_with_logits(model(x).double(), y.double(), reduction="none").mean(0)
            losses, code = F.cross_entropy(model(x).double(), _code(y), reduction="none"), _code(y)
        expected_ce = np.array([losses[code == c].mean().item() for c in range(len(LABELS))])
        # The CE monitor has error_bars=True: one cluster per image, numpy's clustered standard error per class.
        stderr_ce = np.array([_clustered_stderr(losses[code == c].numpy()) for c in range(len(LABELS))])
        last = single_ce.history[stage][-1]
        # float32 logits: a class whose losses hardly differ (stderr 3e-3) keeps ~1e-8 of float32 rounding.
        np.testing.assert_allclose(last["stderr"], stderr_ce, rtol=1e-5)
        np.testing.assert_allclose(last["low"], expected_ce - 1.959963984540054 * stderr_ce, rtol=1e-6)
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
            got_ce = [r["values"] for r in out["unpadded_ce"][stage]]  # the multiclass monitor, per true class
            np.testing.assert_allclose(got_ce, [r["values"] for r in single_ce.history[stage]], rtol=1e-7)
            np.testing.assert_array_equal(got_ce, [r["values"] for r in ranks[0]["unpadded_ce"][stage]])
            for key in ("stderr", "low", "high", "macro_low", "macro_high"):  # the intervals too, synced once
                got_bars = [r[key] for r in out["unpadded_ce"][stage]]
                np.testing.assert_allclose(got_bars, [r[key] for r in single_ce.history[stage]], rtol=1e-6)
                np.testing.assert_array_equal(got_bars, [r[key] for r in ranks[0]["unpadded_ce"][stage]])
        np.testing.assert_allclose(_logged(tmp_path / "single", stage, "ce"), [expected_ce] * epochs, rtol=1e-6)
        ddp_ce = _logged(tmp_path / "ddp" / "unpadded", stage, "ce")
        np.testing.assert_allclose(ddp_ce, _logged(tmp_path / "single", stage, "ce"), rtol=1e-7)
        for prefix in ("ce_low", "ce_high"):
            ddp_ends = _logged(tmp_path / "ddp" / "unpadded", stage, prefix)
            np.testing.assert_allclose(ddp_ends, _logged(tmp_path / "single", stage, prefix), rtol=1e-6)

    # Two validation dataloaders: each rank's validate() returns one dict per dataloader with its own synced values.
    single_results, single_history = _validate_two_loaders()
    per_loader = [_logged_ce_reference(data, subset) for subset in (data.val_set, data.test_set)]
    for results, history in [(single_results, single_history), *(out["two_loaders"] for out in ranks)]:
        assert len(results) == 2 and [r["fn"] for r in history] == ["validate"]
        for i, result in enumerate(results):
            got = [result[f"val/two/{name}/dataloader_idx_{i}"] for name in LABELS]
            np.testing.assert_allclose(got, per_loader[i][0], rtol=1e-6)
            assert f"val/two/dataloader_idx_{1 - i}" not in result
            low = [result[f"val/two_low/{name}/dataloader_idx_{i}"] for name in LABELS]
            assert np.all((np.array(low) < np.array(got)) | np.isnan(low))  # nan: a class with one sample
            assert f"val/two_high/dataloader_idx_{i}" in result
            np.testing.assert_allclose(history[0]["dataloaders"][i]["values"], per_loader[i][0], rtol=1e-6)
        np.testing.assert_allclose(history[0]["values"], _pooled(per_loader), rtol=1e-6)

    rank0, rank1 = (out["warnings"] for out in ranks)
    assert rank1 == []  # warnings come from rank zero only
    # Lightning's "use sync_dist=True" hint is silenced for the monitor's (already synced) keys only.
    assert any("'val/other'" in hint for hint in ranks[0]["sync_hints"])
    assert all("/bce" not in hint and "/ce" not in hint for hint in ranks[0]["sync_hints"])
    assert [out["filters_kept"] for out in ranks] == [True, True]
    assert len(rank0) == 4  # one for val, one for test, from each monitor, in the padded run only
    assert all("covers 26 samples for a data set of 25: it repeats 1 sample" in message for message in rank0)
    assert sorted(message.split(":")[0] for message in rank0) == ["PerClassBCEMonitor"] * 2 + ["PerClassCEMonitor"] * 2
