"""PerClassBCEMonitor: logged per-label values against an independent float64 computation."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.lightning import PassThrough, trainer
from lightning.pytorch.callbacks import Callback
from PIL import Image
from sklearn.metrics import log_loss
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, UnpaddedDistributedSampler
from xent_metrics.demos.data import DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP
from xent_metrics.demos.tags import TAGS

# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")

LABELS = list(TAGS)


class Recorder(Callback):
    """Keeps every step output, so the test computes its reference over exactly the samples seen."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, bool, torch.Tensor, torch.Tensor]] = []

    def _keep(self, stage: str, trainer: pl.Trainer, outputs: dict) -> None:
        preds, target = outputs["preds"].detach().clone(), outputs["target"].clone()
        self.seen.append((stage, trainer.current_epoch, trainer.sanity_checking, preds, target))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._keep("train", trainer, outputs)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep("val", trainer, outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep("test", trainer, outputs)

    def data(self, stage: str, epoch: int, sanity: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [(p, t) for s, e, san, p, t in self.seen if s == stage and e == epoch and san == sanity]
        return torch.cat([p for p, _ in rows]), torch.cat([t for _, t in rows])


def bce_reference(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> np.ndarray:
    """Per-column mean BCE-with-logits in float64, over the entries not equal to ``ignore_index``."""
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    loss = F.binary_cross_entropy_with_logits(logits.double(), target.double().clamp(0, 1), reduction="none")
    return ((loss * keep).sum(0) / keep.sum(0)).numpy()


def logged(tmp_path: Path, stage: str, prefix: str = "bce") -> pd.DataFrame:
    """The rows of ``metrics.csv`` that carry ``{stage}/{prefix}``, one per epoch."""
    (csv,) = Path(tmp_path).glob("**/metrics.csv")
    frame = pd.read_csv(csv)
    return frame[frame[f"{stage}/{prefix}"].notna()].reset_index(drop=True)


def tiny_data(**kwargs) -> DigitTagsDataModule:
    return DigitTagsDataModule(**{"max_samples": 200, "batch_size": 16, "seed": 1, **kwargs})


def test_logged_values_equal_float64_reference_for_train_val_test(tmp_path: Path) -> None:
    torch.manual_seed(0)
    recorder, monitor = Recorder(), PerClassBCEMonitor(labels=LABELS, print_table=False, save_heatmap=False)
    run = trainer(tmp_path, [recorder, monitor])
    model, data = MultiLabelMLP(lr=0.05), tiny_data()
    run.fit(model, datamodule=data)
    run.test(model, datamodule=data, verbose=False)

    # The default sanity check ran 2 validation batches that must not be counted.
    assert len(recorder.data("val", 0, sanity=True)[0]) == 32
    seen = {"train": 3 * 16, "val": 2 * 16, "test": 40}  # limit_*_batches x batch size; test: all 40 samples
    for stage, epochs in (("train", [0, 1]), ("val", [0, 1]), ("test", [2])):  # test runs after 2 epochs
        frame = logged(tmp_path, stage)
        assert len(frame) == len(epochs) == len(monitor.history[stage])
        for row, epoch in enumerate(epochs):
            preds, target = recorder.data(stage, epoch)
            assert len(preds) == seen[stage]
            expected = bce_reference(preds, target)
            assert monitor.history[stage][row]["epoch"] == frame.loc[row, "epoch"] == epoch
            got_history = np.array(monitor.history[stage][row]["values"])
            got_logged = frame.loc[row, [f"{stage}/bce/{name}" for name in LABELS]].to_numpy(dtype=float)
            # float32 logits: the element losses carry float32 rounding (~1e-8 relative), the sums are float64.
            np.testing.assert_allclose(got_history, expected, rtol=1e-6, atol=0)
            np.testing.assert_array_equal(got_logged, got_history)  # logged as computed, no float32 round trip
            assert frame.loc[row, f"{stage}/bce"] == pytest.approx(expected.mean(), rel=1e-6)
    # Training changed the model between epochs, so the two epochs' values differ (the check is not vacuous).
    assert not np.allclose(monitor.history["val"][0]["values"], monitor.history["val"][1]["values"])
    # A second, library-independent reference: scikit-learn's log_loss per column.
    preds, target = recorder.data("test", 2)
    probs = torch.sigmoid(preds.double()).numpy()
    sk = [log_loss(target[:, k].numpy(), probs[:, k], labels=[0, 1]) for k in range(len(LABELS))]
    np.testing.assert_allclose(monitor.history["test"][0]["values"], sk, rtol=1e-6)


def passthrough_loaders(x: torch.Tensor, y: torch.Tensor, batch_size: int = 4) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def test_ignore_index_probs_and_custom_keys_with_an_all_ignored_label(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    probs = torch.rand(10, 3, generator=gen, dtype=torch.float64).clamp(0.05, 0.95)
    target = torch.randint(0, 2, (10, 3), generator=gen)
    target[::3, 0] = -1  # some entries of label "a" ignored
    target[:, 2] = -1  # every entry of label "c" ignored
    monitor = PerClassBCEMonitor(
        labels=["a", "b", "c"],
        input_format="probs",
        stages=["train", "val"],
        preds_key="scores",
        target_key="labels",
        ignore_index=-1,
        prefix="xent",
        print_table=False,
        save_heatmap=False,
    )
    run = trainer(tmp_path, [monitor], limit_train_batches=None, limit_val_batches=None, num_sanity_val_steps=0)
    loader = passthrough_loaders(probs, target)
    with pytest.warns(
        UserWarning, match=r"1 label\(s\) had no (train|val) target left.*\['c'\].*logged as nan"
    ) as record:
        run.fit(PassThrough(), train_dataloaders=loader, val_dataloaders=loader)
    ours = [w for w in record if "had no" in str(w.message)]
    assert len(ours) == 2  # once for train, once for val, not once per epoch

    keep = target != -1
    expected = [log_loss(target[keep[:, k], k].numpy(), probs[keep[:, k], k].numpy(), labels=[0, 1]) for k in range(2)]
    for stage in ("train", "val"):
        frame = logged(tmp_path, stage, prefix="xent")
        assert len(frame) == 2
        np.testing.assert_allclose(frame[[f"{stage}/xent/a", f"{stage}/xent/b"]].to_numpy(), [expected] * 2, rtol=1e-12)
        assert frame[f"{stage}/xent/c"].isna().all()
        np.testing.assert_allclose(frame[f"{stage}/xent"], np.mean(expected), rtol=1e-12)
    assert "test/xent" not in pd.read_csv(next(Path(tmp_path).glob("**/metrics.csv"))).columns


def test_log_worst_k_logs_only_the_worst_labels_and_the_macro_mean(tmp_path: Path) -> None:
    x = torch.tensor([[3.0, -2.0, 0.1, 1.0, -0.5]], dtype=torch.float64).repeat(8, 1)
    y = torch.tensor([[0, 1, 1, 1, 0]]).repeat(8, 1)  # per-label BCE from the constant logits: ranks known
    expected = bce_reference(x, y)
    worst = [int(k) for k in np.argsort(-expected)[:2]]
    assert worst == [0, 1]
    monitor = PerClassBCEMonitor(num_labels=5, stages=["val"], log_worst_k=2, preds_key="scores", target_key="labels")
    run = trainer(tmp_path, [monitor], max_epochs=1, limit_val_batches=None, num_sanity_val_steps=0)
    run.fit(PassThrough(), train_dataloaders=passthrough_loaders(x, y), val_dataloaders=passthrough_loaders(x, y))
    frame = logged(tmp_path, "val")
    label_columns = sorted(c for c in frame.columns if c.startswith("val/bce/"))
    assert label_columns == ["val/bce/0", "val/bce/1"]
    np.testing.assert_allclose(frame.loc[0, label_columns].to_numpy(dtype=float), expected[worst], rtol=1e-12)
    assert frame.loc[0, "val/bce"] == pytest.approx(expected.mean(), rel=1e-12)  # macro over all 5 labels
    np.testing.assert_allclose(monitor.history["val"][0]["values"], expected, rtol=1e-12)  # full vector kept


def test_table_heatmap_and_their_switches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    monitor = PerClassBCEMonitor(labels=LABELS, stages=["train", "val"], max_table_rows=4)
    run = trainer(tmp_path, [monitor], max_epochs=3)
    run.fit(MultiLabelMLP(lr=0.05), datamodule=tiny_data())
    assert capsys.readouterr().out == ""  # not printed: Lightning's info log (rank_zero_info) carries the table
    out = "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("Per-label"))
    first, last = monitor.history["val"][0], monitor.history["val"][-1]
    order = sorted(range(len(LABELS)), key=lambda k: -last["values"][k])
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[1] for row in rows] == [LABELS[k] for k in order[:4]]  # worst first, 4 rows
    for row, k in zip(rows, order, strict=False):
        assert float(row[2]) == pytest.approx(last["values"][k], abs=5e-5)
        assert float(row[3]) == pytest.approx(last["values"][k] - first["values"][k], abs=1e-4)
    assert "3 more labels (max_table_rows=4)" in out
    assert f"heatmap: {monitor.heatmap_path}" in out
    assert monitor.heatmap_path == Path(run.log_dir) / "bce_per_label_val.png"
    with Image.open(monitor.heatmap_path) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100

    quiet = PerClassBCEMonitor(labels=LABELS, stages=["val"], print_table=False, save_heatmap=False)
    run = trainer(tmp_path / "quiet", [quiet], max_epochs=1)
    caplog.clear()
    run.fit(MultiLabelMLP(), datamodule=tiny_data())
    assert capsys.readouterr().out == "" and "Per-label" not in caplog.text
    assert quiet.heatmap_path is None and not list((tmp_path / "quiet").glob("**/*.png"))


def test_tensorboard_gets_the_heatmap_figure(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monitor = PerClassBCEMonitor(labels=LABELS, stages=["val"], print_table=False)
    run = trainer(tmp_path, [monitor], max_epochs=2, logger=TensorBoardLogger(tmp_path, name="tb"))
    run.fit(MultiLabelMLP(), datamodule=tiny_data())
    events = EventAccumulator(run.log_dir)
    events.Reload()
    assert "val/bce/heatmap" in events.Tags()["images"]
    assert "val/bce/even" in events.Tags()["scalars"]
    assert monitor.heatmap_path is not None and monitor.heatmap_path.parent == Path(run.log_dir)


def test_label_length_and_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"needs `labels`.*or `num_labels`"):
        PerClassBCEMonitor()
    with pytest.raises(ValueError, match=r"`labels` has 2 names but `num_labels`=3"):
        PerClassBCEMonitor(labels=["a", "b"], num_labels=3)
    with pytest.raises(ValueError, match=r"must be unique.*\['a'\]"):
        PerClassBCEMonitor(labels=["a", "b", "a"])
    with pytest.raises(ValueError, match="non-empty list of non-empty names"):
        PerClassBCEMonitor(labels=["a", ""])
    with pytest.raises(TypeError, match="`labels` must be a list of str"):
        PerClassBCEMonitor(labels="abc")
    with pytest.raises(TypeError, match=r"`num_labels` must be an int, got float 2\.0"):
        PerClassBCEMonitor(num_labels=2.0)
    with pytest.raises(ValueError, match="`num_labels` must be at least 1, got 0"):
        PerClassBCEMonitor(num_labels=0)
    with pytest.raises(ValueError, match=r"`stages` must be a non-empty list drawn from .*'validate'"):
        PerClassBCEMonitor(num_labels=2, stages=["validate"])
    with pytest.raises(ValueError, match="`prefix` must be a non-empty str"):
        PerClassBCEMonitor(num_labels=2, prefix="")
    with pytest.raises(ValueError, match="`log_worst_k` must be at least 1"):
        PerClassBCEMonitor(num_labels=2, log_worst_k=0)
    with pytest.raises(TypeError, match="`max_table_rows` must be an int or None, got str"):
        PerClassBCEMonitor(num_labels=2, max_table_rows="all")
    with pytest.raises(ValueError, match="input_format"):
        PerClassBCEMonitor(num_labels=2, input_format="sigmoid")


def test_step_output_errors_name_the_problem() -> None:
    monitor = PerClassBCEMonitor(labels=["a", "b", "c"])
    good_target = torch.zeros(4, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"given 3 `labels` \(\['a', 'b', 'c'\]\).*shape \(4, 7\); expected \(N, 3\)"):
        monitor.on_train_batch_end(None, None, {"preds": torch.zeros(4, 7), "target": good_target}, None, 0)
    with pytest.raises(ValueError, match=r"found no \['target'\] in what `validation_step` returned \(keys \['loss'"):
        monitor.on_validation_batch_end(_NotSanity(), None, {"loss": 0.0, "preds": torch.zeros(4, 3)}, None, 0)
    with pytest.raises(TypeError, match="`test_step` returns, but it returned Tensor; return a dict"):
        monitor.on_test_batch_end(None, None, torch.zeros(()), None, 0)


class _NotSanity:
    sanity_checking = False


def test_label_length_mismatch_with_the_model_fails_fast(tmp_path: Path) -> None:
    monitor = PerClassBCEMonitor(labels=LABELS[:5])
    run = trainer(tmp_path, [monitor], max_epochs=1)
    with pytest.raises(ValueError, match=r"given 5 `labels`.*`training_step` returned `preds` of shape \(16, 7\)"):
        run.fit(MultiLabelMLP(), datamodule=tiny_data())


def test_padded_distributed_sampler_is_detected_once_with_the_fix(tmp_path: Path) -> None:
    x, y = torch.randn(5, 2), torch.randint(0, 2, (5, 2))
    dataset = TensorDataset(x, y)
    padded = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, num_replicas=2, rank=0))
    monitor = PerClassBCEMonitor(num_labels=2, stages=["val"], preds_key="scores", target_key="labels")
    run = trainer(tmp_path, [monitor], max_epochs=2, limit_val_batches=None, num_sanity_val_steps=0)
    with pytest.warns(UserWarning, match=r"covers 6 samples for a data set of 5: it repeats 1 sample.*Unpadded") as rec:
        run.fit(PassThrough(), train_dataloaders=DataLoader(dataset), val_dataloaders=padded)
    assert sum("DistributedSampler covers" in str(w.message) for w in rec) == 1  # two epochs, one warning

    dropping = DataLoader(dataset, sampler=DistributedSampler(dataset, num_replicas=2, rank=1, drop_last=True))
    monitor = PerClassBCEMonitor(num_labels=2, stages=["test"], preds_key="scores", target_key="labels")
    PassThrough.test_step = PassThrough.validation_step
    try:
        with pytest.warns(UserWarning, match=r"covers 4 samples for a data set of 5: it drops 1 sample"):
            trainer(tmp_path / "t", [monitor]).test(PassThrough(), dataloaders=dropping, verbose=False)
    finally:
        del PassThrough.test_step

    fixed = DataLoader(dataset, batch_size=2, sampler=UnpaddedDistributedSampler(dataset))
    monitor = PerClassBCEMonitor(num_labels=2, stages=["val"], preds_key="scores", target_key="labels")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*DistributedSampler covers.*")
        run = trainer(tmp_path / "fixed", [monitor], max_epochs=1, limit_val_batches=None, num_sanity_val_steps=0)
        run.fit(PassThrough(), train_dataloaders=DataLoader(dataset), val_dataloaders=fixed)
    np.testing.assert_allclose(monitor.history["val"][0]["values"], bce_reference(x, y), rtol=1e-6)


@pytest.mark.parametrize("size", [0, 1, 5, 8, 11])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_unpadded_sampler_shards_cover_each_sample_exactly_once(size: int, world: int, shuffle: bool) -> None:
    data = list(range(size))
    shards = [list(UnpaddedDistributedSampler(data, num_replicas=world, rank=r, shuffle=shuffle)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == data
    assert [len(UnpaddedDistributedSampler(data, num_replicas=world, rank=r)) for r in range(world)] == [
        len(s) for s in shards
    ]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_unpadded_sampler_shuffles_per_epoch_identically_on_every_rank() -> None:
    samplers = [UnpaddedDistributedSampler(list(range(9)), num_replicas=2, rank=r, shuffle=True) for r in (0, 1)]
    first = [list(s) for s in samplers]
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert sorted(first[0] + first[1]) == sorted(second[0] + second[1]) == list(range(9))
    assert first != second


def test_nan_history_values_survive_the_table() -> None:
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"])
    monitor.history["val"] = [
        {"epoch": 0, "step": 1, "values": [0.5, math.nan], "macro": 0.5},
        {"epoch": 1, "step": 2, "values": [0.25, math.nan], "macro": 0.25},
    ]
    table = monitor.summary_table()
    assert table is not None
    lines = table.splitlines()
    assert lines[2].split() == ["1", "a", "0.2500", "-0.2500"]
    assert lines[3].split() == ["2", "b", "nan", "nan"]


def test_empty_label_warning_comes_once_per_label_and_stage() -> None:
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val", "test"], ignore_index=-1)
    with pytest.warns(UserWarning, match=r"1 label\(s\) had no val target.*ignore_index=-1.*\['a'\]"):
        monitor._warn_empty("val", [math.nan, 0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor._warn_empty("val", [math.nan, 0.1])  # 'a' again: silent
    with pytest.warns(UserWarning, match=r"1 label\(s\) had no val target.*\['b'\]"):
        monitor._warn_empty("val", [math.nan, math.nan])  # only the new one
    with pytest.warns(UserWarning, match=r"2 label\(s\) had no test target.*\['a', 'b'\]"):
        monitor._warn_empty("test", [math.nan, math.nan])
