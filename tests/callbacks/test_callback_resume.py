"""PerClassBCEMonitor checkpoints: history and in-progress states, resume, two monitors in one checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.demos.data import DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP
from xent_metrics.demos.tags import TAGS

# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")

LABELS = list(TAGS)


def monitors() -> list[PerClassBCEMonitor]:
    full = PerClassBCEMonitor(labels=LABELS, stages=["train", "val"], print_table=False, save_heatmap=False)
    second = PerClassBCEMonitor(labels=LABELS, stages=["val"], prefix="val_only", print_table=False, save_heatmap=False)
    return [full, second]


def fit(tmp_path: Path, callbacks: list[Callback], ckpt_path: str | None = None) -> None:
    torch.manual_seed(0)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=4,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=callbacks,
    )
    data = DigitTagsDataModule(max_samples=200, batch_size=16, seed=1)
    trainer.fit(MultiLabelMLP(lr=0.05), datamodule=data, ckpt_path=ckpt_path)


# The resumed run keeps checkpointing into the folder it resumes from, as a real resumed run does.
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_resume_from_a_mid_training_checkpoint_gives_the_uninterrupted_history(tmp_path: Path) -> None:
    uninterrupted = monitors()
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    fit(tmp_path / "a", [*uninterrupted, every_epoch])
    checkpoint = tmp_path / "ckpt" / "epoch=1.ckpt"

    saved = torch.load(checkpoint, weights_only=True)["callbacks"]  # plain types only: loadable with weights_only
    assert {m.state_key for m in uninterrupted} <= set(saved)
    assert uninterrupted[0].state_key != uninterrupted[1].state_key
    assert [r["epoch"] for r in saved[uninterrupted[0].state_key]["history"]["val"]] == [0, 1]

    resumed = monitors()
    same_checkpointing = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}-resumed", save_top_k=-1)
    fit(tmp_path / "b", [*resumed, same_checkpointing], ckpt_path=str(checkpoint))
    for before, after in zip(uninterrupted, resumed, strict=True):
        assert before.history.keys() == after.history.keys()
        for stage in before.history:
            assert [r["epoch"] for r in after.history[stage]] == [0, 1, 2, 3]
            for old, new in zip(before.history[stage], after.history[stage], strict=True):
                assert old["step"] == new["step"]
                np.testing.assert_allclose(new["values"], old["values"], rtol=1e-12)
    # Training changes the model, so equal histories after the resume point are not a coincidence.
    assert not np.allclose(uninterrupted[0].history["val"][2]["values"], uninterrupted[0].history["val"][3]["values"])


class Outputs(Callback):
    """Keeps the training step outputs (to recompute what a mid-epoch checkpoint holds)."""

    def __init__(self) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.append((outputs["preds"].detach().clone(), outputs["target"].clone()))


def test_mid_epoch_checkpoint_holds_the_in_progress_sums(tmp_path: Path) -> None:
    outputs, monitor = Outputs(), monitors()[0]
    mid_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=2, save_top_k=-1)
    fit(tmp_path, [outputs, monitor, mid_epoch])
    state = torch.load(tmp_path / "ckpt" / "step=2.ckpt", weights_only=True)["callbacks"][monitor.state_key]
    assert [r["epoch"] for r in state["history"]["val"]] == []  # saved inside epoch 0, before its validation

    restored = PerClassBCEMonitor(labels=LABELS, stages=["train", "val"])
    restored.load_state_dict(state)
    preds = torch.cat([p for p, _ in outputs.batches[:2]])
    target = torch.cat([t for _, t in outputs.batches[:2]])
    expected = F.binary_cross_entropy_with_logits(preds.double(), target.double(), reduction="none").mean(0)
    torch.testing.assert_close(restored.metrics["train"].compute(), expected, rtol=1e-6, atol=0)
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):  # nothing in progress there
        assert torch.isnan(restored.metrics["val"].compute()).all()

    # Restored states keep accumulating: adding batch 3 gives epoch 0's logged value.
    restored.on_train_batch_end(None, None, {"preds": outputs.batches[2][0], "target": outputs.batches[2][1]}, None, 2)
    torch.testing.assert_close(
        restored.metrics["train"].compute().tolist(), monitor.history["train"][0]["values"], rtol=1e-12, atol=0
    )


def test_state_dict_round_trip_and_label_mismatch() -> None:
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"])
    monitor.history["val"].append({"epoch": 0, "step": 3, "values": [0.5, float("nan")], "macro": 0.5})
    monitor.on_validation_batch_end(
        _NotSanity(), None, {"preds": torch.tensor([[0.0, 1.0]]), "target": torch.tensor([[1, 0]])}, None, 0
    )
    state = monitor.state_dict()
    monitor.history["val"][0]["values"][0] = 9.0  # the state is a copy
    assert state["history"]["val"][0]["values"][0] == 0.5

    twin = PerClassBCEMonitor(labels=["a", "b"], stages=["val"])
    twin.load_state_dict(state)
    assert twin.history["val"][0]["epoch"] == 0 and twin.history["val"][0]["values"][0] == 0.5
    torch.testing.assert_close(twin.metrics["val"].compute(), monitor.metrics["val"].compute())
    np.testing.assert_allclose(twin.metrics["val"].compute(), [np.log(2), np.log1p(np.e)], rtol=1e-6)

    older = {"history": state["history"]}  # an older or partial state: missing keys keep their defaults
    PerClassBCEMonitor(labels=["a", "b"], stages=["val"]).load_state_dict(older)
    with pytest.raises(ValueError, match=r"checkpoint's PerClassBCEMonitor state has 2 labels \['a', 'b'\].*3"):
        PerClassBCEMonitor(labels=["a", "b", "c"], stages=["val"]).load_state_dict(state)


class _NotSanity:
    sanity_checking = False


class _Trainer(_NotSanity):
    world_size, current_epoch, global_step, state = 1, 0, 1, None


class _Module:
    device = torch.device("cpu")

    def log_dict(self, *args: object, **kwargs: object) -> None:
        pass


def test_warnings_given_and_the_run_count_survive_a_checkpoint() -> None:
    trainer, module = _Trainer(), _Module()
    batch = {"preds": torch.zeros(2, 2), "target": torch.tensor([[1, -1], [0, -1]])}  # label "b": every target ignored
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], ignore_index=-1)
    monitor.setup(trainer, module, "fit")
    monitor.on_validation_batch_end(trainer, module, batch, None, 0)
    with pytest.warns(UserWarning, match=r"1 label\(s\) had no val target left to score .*\['b'\]"):
        monitor.on_validation_epoch_end(trainer, module)

    twin = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], ignore_index=-1)
    twin.load_state_dict(monitor.state_dict())
    twin.setup(trainer, module, "validate")
    twin.on_validation_batch_end(trainer, module, batch, None, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "b" was warned about before the checkpoint: not again
        twin.on_validation_epoch_end(trainer, module)
    assert [r["run"] for r in twin.history["val"]] == [1, 2]
    last = twin.history["val"][1]["values"]
    assert np.isnan(last[1]) and last[0] == pytest.approx(np.log(2), rel=1e-6)  # float32 logits
    fresh = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], ignore_index=-1)  # without the state it warns
    fresh.setup(trainer, module, "validate")
    fresh.on_validation_batch_end(trainer, module, batch, None, 0)
    with pytest.warns(UserWarning, match="had no val target left to score"):
        fresh.on_validation_epoch_end(trainer, module)
