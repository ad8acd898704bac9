"""The monitors with ``error_bars=True``: logged interval ends against numpy, the table, checkpoints, bad options."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.error_bars import clustered_reference
from helpers.lightning import PassThrough, trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor

# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")

CLASSES = ["cat", "dog", "fox"]
KEYS = {"preds_key": "scores", "target_key": "labels"}  # what helpers.lightning.PassThrough returns


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def _multiclass(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 logits (unnormalised, a few confident rows) and class indices; every class several times."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 1.3
    logits[::7, 0] += 9.3  # confident rows, right or wrong
    return logits, torch.randint(0, 3, (n,), generator=gen)


def _ce_reference(logits: torch.Tensor, target: torch.Tensor, confidence: float) -> dict[str, np.ndarray]:
    """Per class (one cluster per sample) and the macro mean: value, stderr, low, high from float64 torch losses."""
    losses = F.cross_entropy(logits, target, reduction="none").numpy()
    y = target.numpy()
    value, stderr = np.array([clustered_reference(np.ones((y == c).sum()), losses[y == c]) for c in range(3)]).T
    macro, macro_stderr = value.mean(), np.sqrt((stderr**2).sum()) / 3  # disjoint samples: independent classes
    z = _z(confidence)
    return {
        "value": value,
        "stderr": stderr,
        "low": value - z * stderr,
        "high": value + z * stderr,
        "macro": np.array([macro, macro_stderr, macro - z * macro_stderr, macro + z * macro_stderr]),
    }


def test_ce_monitor_logs_per_class_and_macro_interval_ends_and_the_table_shows_stderr(tmp_path: Path) -> None:
    logits, target = _multiclass()
    loader = DataLoader(TensorDataset(logits, target), batch_size=8)  # 5 batches: a Metric split of the samples
    monitor = PerClassCEMonitor(
        classes=CLASSES, stages=["val"], error_bars=True, confidence=0.9, save_heatmap=False, **KEYS
    )
    run = trainer(tmp_path, [monitor], limit_val_batches=None, num_sanity_val_steps=0)
    run.fit(PassThrough(), train_dataloaders=loader, val_dataloaders=loader)

    expected = _ce_reference(logits, target, 0.9)
    frame = pd.read_csv(tmp_path / "metrics.csv")
    rows = frame[frame["val/ce"].notna()].reset_index(drop=True)
    assert len(rows) == 2 == len(monitor.history["val"])
    for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high")):
        logged = rows[[f"val/ce{suffix}/{name}" for name in CLASSES]].to_numpy(dtype=float)
        np.testing.assert_allclose(logged, [expected[key]] * 2, rtol=1e-9)
    np.testing.assert_allclose(monitor.history["val"][-1]["stderr"], expected["stderr"], rtol=1e-9)
    macro = rows[["val/ce", "val/ce_low", "val/ce_high"]].to_numpy(dtype=float)
    np.testing.assert_allclose(macro, [expected["macro"][[0, 2, 3]]] * 2, rtol=1e-9)
    assert monitor.history["val"][-1]["macro_stderr"] == pytest.approx(expected["macro"][1], rel=1e-9)
    assert not any(column.startswith("train/ce") for column in frame.columns)  # stages=["val"]

    table = monitor.summary_table()
    assert table is not None and table.splitlines()[0].endswith(", value +- standard error")
    for k, name in enumerate(CLASSES):
        assert _row(table, name) == [f"{expected['value'][k]:.4f}", "+-", f"{expected['stderr'][k]:.4f}", "+0.0000"]
    assert _row(table, "macro") == [f"{expected['macro'][0]:.4f}", "+-", f"{expected['macro'][1]:.4f}", "+0.0000"]
    assert table.isascii()


def _row(table: str, name: str) -> list[str]:
    """The cells after the name of the table's row for ``name``."""
    (line,) = [line.split() for line in table.splitlines() if name in line.split()[:2]]
    return line[line.index(name) + 1 :]


def test_bce_monitor_logs_per_label_interval_ends_with_ignored_entries_and_log_worst_k(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(30, 3, generator=gen, dtype=torch.float64) * 2.1
    labels = torch.randint(0, 2, (30, 3), generator=gen)
    labels[::4, 1] = -1  # ignored entries: those rows are no cluster of label "dog"
    loader = DataLoader(TensorDataset(scores, labels), batch_size=7)
    monitor = PerClassBCEMonitor(
        labels=CLASSES, stages=["train"], ignore_index=-1, log_worst_k=2, error_bars=True, save_heatmap=False, **KEYS
    )
    run = trainer(tmp_path, [monitor], max_epochs=1, limit_train_batches=None, limit_val_batches=0)
    run.fit(PassThrough(), train_dataloaders=loader)

    keep = (labels != -1).double()
    losses = F.binary_cross_entropy_with_logits(scores, labels.clamp_min(0).double(), reduction="none") * keep
    value, stderr = np.array([clustered_reference(keep[:, k].numpy(), losses[:, k].numpy()) for k in range(3)]).T
    z = _z(0.95)
    record = monitor.history["train"][-1]
    np.testing.assert_allclose(record["values"], value, rtol=1e-10)
    np.testing.assert_allclose(record["stderr"], stderr, rtol=1e-9)
    np.testing.assert_allclose(record["low"], value - z * stderr, rtol=1e-9)
    np.testing.assert_allclose(record["high"], value + z * stderr, rtol=1e-9)

    frame = pd.read_csv(tmp_path / "metrics.csv")
    worst = sorted(range(3), key=lambda k: -value[k])[:2]
    for suffix in ("", "_low", "_high"):
        assert {c for c in frame.columns if c.startswith(f"train/bce{suffix}/")} == {
            f"train/bce{suffix}/{CLASSES[k]}" for k in worst
        }
    row = frame[frame["train/bce"].notna()].iloc[-1]
    for k in worst:
        assert row[f"train/bce_low/{CLASSES[k]}"] == record["low"][k]
        assert row[f"train/bce_high/{CLASSES[k]}"] == record["high"][k]
    # The macro mean over labels has no interval: a row's labels are correlated, their covariances not kept.
    assert "train/bce_low" not in frame.columns and "macro_stderr" not in record
    table = monitor.summary_table()
    assert table is not None and _row(table, "cat") == [f"{value[0]:.4f}", "+-", f"{stderr[0]:.4f}", "+0.0000"]
    assert _row(table, "macro") == [f"{value.mean():.4f}", "+0.0000"]


# Every epoch is saved and the resumed run writes into the same folder, as a real resumed run does.
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_resume_from_a_checkpoint_keeps_the_intervals(tmp_path: Path) -> None:
    logits, target = _multiclass(48, seed=2)
    loader = DataLoader(TensorDataset(logits, target), batch_size=8)

    def fit(root: Path, ckpt_path: str | None = None) -> PerClassCEMonitor:
        monitor = PerClassCEMonitor(classes=CLASSES, error_bars=True, save_heatmap=False, **KEYS)
        every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
        run = trainer(root, [monitor, every_epoch], max_epochs=3, enable_checkpointing=True, num_sanity_val_steps=0)
        run.fit(PassThrough(), train_dataloaders=loader, val_dataloaders=loader, ckpt_path=ckpt_path)
        return monitor

    uninterrupted = fit(tmp_path / "a")
    resumed = fit(tmp_path / "b", str(tmp_path / "ckpt" / "epoch=0.ckpt"))
    for stage in ("train", "val"):
        assert [r["epoch"] for r in resumed.history[stage]] == [0, 1, 2]
        for before, after in zip(uninterrupted.history[stage], resumed.history[stage], strict=True):
            for key in ("values", "stderr", "low", "high"):
                np.testing.assert_allclose(after[key], before[key], rtol=1e-12)
            assert after["macro_high"] == pytest.approx(before["macro_high"], rel=1e-12)
    assert resumed.summary_table() == uninterrupted.summary_table()


def _saved(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class _NotSanity:
    sanity_checking = False


def test_in_progress_error_bar_rows_round_trip_and_a_state_without_them_loads_only_without_error_bars() -> None:
    logits, target = _multiclass(12)
    outputs = {"preds": logits, "target": target}
    with_bars = PerClassCEMonitor(classes=CLASSES, stages=["val"], error_bars=True)
    with_bars.on_validation_batch_end(_NotSanity(), None, outputs, None, 0)
    state = _saved(with_bars.state_dict())
    assert state["in_progress"]["val"]["sums"].shape[0] > 3 and "error bars" in state["in_progress"]["val"]["layout"]
    twin = PerClassCEMonitor(classes=CLASSES, stages=["val"], error_bars=True)
    twin.load_state_dict(state)
    expected = _ce_reference(logits, target, 0.95)
    np.testing.assert_allclose(twin.metrics["val"].compute_interval()["stderr"], expected["stderr"], rtol=1e-9)

    old = PerClassCEMonitor(classes=CLASSES, stages=["val"])  # a checkpoint of a monitor without error bars
    old.on_validation_batch_end(_NotSanity(), None, outputs, None, 0)
    old_state = _saved(old.state_dict())
    no_layout = {**old_state, "in_progress": {"val": {"sums": old_state["in_progress"]["val"]["sums"]}}}
    for saved in (old_state, no_layout):  # with its layout, and from before layouts were saved
        fresh = PerClassCEMonitor(classes=CLASSES, stages=["val"])
        fresh.load_state_dict(saved)
        np.testing.assert_allclose(fresh.metrics["val"].compute(), expected["value"], rtol=1e-12)
        refused = PerClassCEMonitor(classes=CLASSES, stages=["val"], error_bars=True)
        with pytest.raises(ValueError, match=r"in_progress\['val'\] does not fit .*loads only with error_bars=False"):
            refused.load_state_dict(saved)
        assert refused.metrics["val"].sums.abs().sum() == 0  # refused before any change
    with pytest.raises(ValueError, match=r"does not fit .*with error bars"):
        PerClassCEMonitor(classes=CLASSES, stages=["val"]).load_state_dict(state)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"error_bars": "yes"}, TypeError, r"`error_bars` must be a bool .*got str 'yes'"),
        ({"error_bars": 1}, TypeError, r"`error_bars` must be a bool .*got int 1"),
        ({"error_bars": True, "confidence": 1.5}, ValueError, r"`confidence` must lie strictly between 0 and 1.*1\.5"),
        ({"confidence": 0.0}, ValueError, r"`confidence` must lie strictly between 0 and 1.*0\.0"),
        ({"confidence": "0.9"}, TypeError, r"`confidence` must be a float in \(0, 1\).*got str"),
    ],
)
def test_bad_error_bar_options_are_refused(options: dict, error: type, match: str) -> None:
    for monitor in (PerClassBCEMonitor, PerClassCEMonitor):
        with pytest.raises(error, match=match):
            monitor(num_labels=2, **options) if monitor is PerClassBCEMonitor else monitor(num_classes=2, **options)


def test_ce_monitor_with_error_bars_refuses_probability_targets_and_changes_nothing() -> None:
    monitor = PerClassCEMonitor(classes=CLASSES, stages=["train"], error_bars=True)
    soft = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    with pytest.raises(
        ValueError, match=r"takes class-index targets, but `target` is a torch.float64 tensor.*\(4, 3\)"
    ):
        monitor.on_train_batch_end(None, None, {"preds": torch.zeros(4, 3), "target": soft}, None, 0)
    assert monitor.metrics["train"].sums.abs().sum() == 0
    plain = PerClassCEMonitor(classes=CLASSES, stages=["train"])  # without error bars soft targets are read as before
    plain.on_train_batch_end(None, None, {"preds": torch.zeros(4, 3, dtype=torch.float64), "target": soft}, None, 0)
    np.testing.assert_allclose(plain.metrics["train"].compute(), [np.log(3)] * 3, rtol=1e-12)
