"""The monitors' manners: Lightning's state key, messages through Lightning's info log, a warning filter that lives
only as long as the trainer call, hooks that skip what they do not measure."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from helpers.lightning import PassThrough
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor


def _hint(key: str) -> str:
    """Lightning 2.6's text (logger_connector/result.py) for a value logged on epoch level without sync_dist."""
    return (
        f"It is recommended to use `self.log({key!r}, ..., sync_dist=True)` when logging on epoch level in "
        "distributed setting to accumulate the metric across devices."
    )


def _warn(key: str) -> None:
    warnings.warn(_hint(key), PossibleUserWarning, stacklevel=1)


def _silenced(key: str) -> bool:
    """Whether the hint for ``key`` is ignored (pytest's filterwarnings=error raises it otherwise)."""
    try:
        _warn(key)
    except PossibleUserWarning:
        return False
    return True


_TWO_PROCESSES = SimpleNamespace(world_size=2)
_MODULE = SimpleNamespace(device=torch.device("cpu"))


def test_state_key_is_lightnings_format_of_the_identifying_arguments() -> None:
    monitor = PerClassCEMonitor(num_classes=2, prefix="p", preds_key="x", target_key="y")
    # The layout every checkpoint so far holds (tests/test_checkpoints.py loads one by this key).
    assert monitor.state_key == "PerClassCEMonitor{'prefix': 'p', 'preds_key': 'x', 'target_key': 'y'}"
    assert monitor.state_key == Callback._generate_state_key(monitor, prefix="p", preds_key="x", target_key="y")


def test_sync_hint_filter_covers_only_the_monitors_keys_and_leaves_with_the_call() -> None:
    before = list(warnings.filters)
    bce = PerClassBCEMonitor(num_labels=2, stages=["train", "val"])
    ce = PerClassCEMonitor(num_classes=2, stages=["test"], prefix="c.e")
    PerClassBCEMonitor(num_labels=2, prefix="one").setup(SimpleNamespace(world_size=1), _MODULE, "fit")
    assert warnings.filters == before  # one process: Lightning gives no hint, the monitor adds no filter
    for monitor in (bce, ce):
        monitor.setup(_TWO_PROCESSES, _MODULE, "fit")
    assert all(map(_silenced, ["train/bce", "val/bce/1", "test/c.e", "test/c.e/0"]))
    assert not any(map(_silenced, ["val/loss", "test/bce/0", "val/bce_x", "test/cxe", "val/c.e"]))
    # Torn down in the order they were set up (as Lightning does): nested catch_warnings would leave bce's filter.
    for monitor in (bce, ce):
        monitor.teardown(_TWO_PROCESSES, _MODULE, "fit")
    assert warnings.filters == before and not _silenced("val/bce/1") and not _silenced("test/c.e")

    bce.setup(_TWO_PROCESSES, _MODULE, "validate")
    assert _silenced("val/bce/0")
    bce.on_exception(_TWO_PROCESSES, _MODULE, RuntimeError("boom"))  # a failed call: Lightning skips teardown
    assert warnings.filters == before and not _silenced("val/bce/0")
    bce.teardown(_TWO_PROCESSES, _MODULE, "validate")  # a second removal is harmless
    assert warnings.filters == before


class _TwoProcessTrainer(pl.Trainer):
    """A one-process trainer that reports two processes, so the monitor installs its filter in a real fit."""

    @property
    def world_size(self) -> int:
        return 2


class _HintSeen(Callback):
    """Checks, inside the call, that the monitor's filter is in place (it runs after the monitor's setup)."""

    def __init__(self) -> None:
        self.silenced: list[bool] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.silenced.append(_silenced("val/bce/a"))


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.tensor([[0.3, -1.2], [2.0, 0.1]]), torch.tensor([[1, 0], [0, 1]])))


def test_fit_validate_and_a_failed_fit_leave_warnings_filters_as_they_were(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor, seen = PerClassBCEMonitor(labels=["a", "b"], stages=["val"], save_heatmap=False), _HintSeen()
    options = {"default_root_dir": tmp_path, "max_epochs": 1, "num_sanity_val_steps": 0, "logger": False}
    options.update(enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    run = _TwoProcessTrainer(callbacks=[monitor, seen], **options)
    before = list(warnings.filters)
    with caplog.at_level(logging.INFO):
        run.fit(PassThrough("preds", "target"), train_dataloaders=_loader(), val_dataloaders=_loader())
    assert seen.silenced == [True] and warnings.filters == before and not _silenced("val/bce/a")
    # The table goes through Lightning's rank-zero info logger, not print.
    (table,) = [r for r in caplog.records if r.getMessage().startswith("Per-label BCE, val epoch 0")]
    assert table.name == "lightning.pytorch.utilities.rank_zero" and table.levelno == logging.INFO
    assert capsys.readouterr().out == ""

    run.validate(PassThrough("preds", "target"), dataloaders=_loader(), verbose=False)
    assert seen.silenced == [True, True] and warnings.filters == before

    train = PerClassBCEMonitor(labels=["a", "b"], stages=["train"])
    failing = _TwoProcessTrainer(callbacks=[train], **options)
    with pytest.raises(ValueError, match=r"found no \['preds', 'target'\] in what `training_step` returned"):
        failing.fit(PassThrough(), train_dataloaders=_loader(), val_dataloaders=_loader())  # keys "scores", "labels"
    assert warnings.filters == before and not _silenced("train/bce/a")


def test_hooks_skip_the_stages_not_measured_and_the_sanity_check() -> None:
    monitor = PerClassBCEMonitor(labels=["a", "b"], stages=["val"])
    sanity = SimpleNamespace(sanity_checking=True, current_epoch=0, global_step=0)
    garbage = torch.zeros(())  # a stage that is measured refuses it with a TypeError
    monitor.on_train_batch_end(None, None, garbage, None, 0)
    monitor.on_test_batch_end(None, None, garbage, None, 0)
    monitor.on_validation_batch_end(sanity, None, garbage, None, 0)
    for hook in (monitor.on_train_epoch_end, monitor.on_test_epoch_end, monitor.on_validation_epoch_end):
        hook(sanity, None)
    monitor.on_test_epoch_start(sanity, None)
    monitor.on_validation_epoch_start(sanity, None)
    assert monitor.history == {"val": []}
    with pytest.raises(TypeError, match="`validation_step` returns, but it returned Tensor"):
        monitor.on_validation_batch_end(SimpleNamespace(sanity_checking=False), None, garbage, None, 0)
