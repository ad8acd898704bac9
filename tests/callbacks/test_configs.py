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

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


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
        assert monitor.error_bars is True and monitor.confidence == 0.95 and monitor.metrics["val"]._error_bars
    else:
        assert monitor.error_bars is False
    if config.name == "demo.yaml":
        assert cli.trainer.max_epochs <= 20 and cli.trainer.num_devices == 1


PACKAGED = Path(__file__).resolve().parents[2] / "xent_metrics" / "demos" / "configs"


def test_the_packaged_configs_are_the_root_configs_byte_for_byte() -> None:
    """configs/ is the copy users read; xent_metrics/demos/configs/ ships in the wheel. Edit both, or copy."""
    assert sorted(p.name for p in PACKAGED.glob("*.yaml")) == [p.name for p in CONFIGS]
    for config in CONFIGS:
        assert (PACKAGED / config.name).read_bytes() == config.read_bytes(), f"cp configs/{config.name} {PACKAGED}/"


def test_config_names_resolve_to_the_packaged_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xent_metrics.demos import __main__ as demo

    monkeypatch.chdir(tmp_path)  # not the checkout: configs/ddp.yaml does not exist here
    ddp = str(PACKAGED / "ddp.yaml")
    assert demo._with_default_config(["--config", "ddp"]) == ["--config", ddp]
    assert demo._with_default_config(["-c", "ddp.yaml", "--trainer.max_epochs=1"]) == [
        "-c",
        ddp,
        "--trainer.max_epochs=1",
    ]
    assert demo._with_default_config(["--config=configs/ddp.yaml"]) == [f"--config={ddp}"]
    assert demo._with_default_config([]) == ["--config", str(PACKAGED / "demo.yaml")]
    (tmp_path / "ddp.yaml").write_text("seed_everything: 1\n")  # a file of the user's wins over the packaged one
    assert demo._with_default_config(["--config", "ddp.yaml"]) == ["--config", "ddp.yaml"]
    assert demo._with_default_config(["--config", "nope"]) == ["--config", "nope"]  # LightningCLI reports it


# Lightning 2.6's CLI calls jsonargparse APIs deprecated in jsonargparse 4.49; not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli")
def test_help_says_what_the_demo_does(capsys: pytest.CaptureFixture[str]) -> None:
    from xent_metrics.demos import __main__ as demo

    with pytest.raises(SystemExit) as done:
        demo.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m xent_metrics.demos [--config demo|ddp|tensorboard|PATH]")
    assert "PerClassBCEMonitor" in text and "8x8 digits" in text
    assert "the packaged configs/demo.yaml is used" in text
    assert "Part 2 (scikit-learn) follows" in text and "neg_cross_entropy_scorer" in text
