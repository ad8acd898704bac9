"""Every YAML in configs/ parses and instantiates through LightningCLI (run=False)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.demos.data import DigitTagsDataModule
from xent_metrics.demos.model import MultiLabelMLP
from xent_metrics.demos.tags import TAGS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_the_three_documented_configs_exist() -> None:
    assert {"demo.yaml", "ddp.yaml", "tensorboard.yaml"} <= {path.name for path in CONFIGS}


# Lightning 2.6's CLI calls jsonargparse APIs deprecated in jsonargparse 4.49; not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli")
@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_config_instantiates(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning"])  # LightningCLI warns when pytest's own arguments are there too
    args = ["--config", str(config), "--trainer.default_root_dir", str(tmp_path)]
    args += ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    cli = LightningCLI(MultiLabelMLP, DigitTagsDataModule, run=False, args=args)
    (monitor,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, PerClassBCEMonitor)]
    assert monitor.labels == list(TAGS) == cli.datamodule.label_names  # the names match the data's columns
    assert cli.model.hparams.num_labels == len(TAGS) and cli.model.hparams.num_features == cli.datamodule.num_features
    assert isinstance(cli.trainer.logger, (CSVLogger, TensorBoardLogger))
    assert Path(cli.trainer.logger.save_dir) == tmp_path
    if config.name == "ddp.yaml":
        assert isinstance(cli.trainer.strategy, DDPStrategy) and cli.trainer.world_size == 2
        assert cli.trainer.strategy.process_group_backend == "gloo" and cli.datamodule.hparams.unpadded_eval_sampler
    if config.name == "tensorboard.yaml":
        assert isinstance(cli.trainer.logger, TensorBoardLogger) and monitor.log_worst_k == 3
    if config.name == "demo.yaml":
        assert cli.trainer.max_epochs <= 20 and cli.trainer.num_devices == 1
