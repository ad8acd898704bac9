"""The main demo: ``python -m xent_metrics.demos`` end to end, in-process (the command itself: test_wheel.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xent_metrics.callbacks import PerClassBCEMonitor
from xent_metrics.demos import __main__ as demo
from xent_metrics.demos.data import split_indices
from xent_metrics.demos.tags import TAGS, digit_tags, tag_matrix


def test_tags_follow_their_definitions() -> None:
    X, Y, names = digit_tags()
    digits = np.arange(10)
    expected = {
        "even": digits % 2 == 0,
        "prime": np.isin(digits, [2, 3, 5, 7]),
        "greater_than_4": digits > 4,
        "closed_loop": np.isin(digits, [0, 4, 6, 8, 9]),
        "multiple_of_3": digits % 3 == 0,
        "perfect_square": np.isin(digits, [0, 1, 4, 9]),
        "fibonacci": np.isin(digits, [0, 1, 2, 3, 5, 8]),
    }
    assert names == list(expected) == list(TAGS)
    np.testing.assert_array_equal(tag_matrix(digits), np.stack(list(expected.values()), axis=1).astype(int))
    assert X.shape == (1797, 64) and X.dtype == np.float64 and 0 <= X.min() and X.max() == 1
    assert Y.shape == (1797, 7) and set(np.unique(Y)) == {0, 1}


def test_split_is_a_partition_and_rejects_bad_fractions() -> None:
    parts = split_indices(101, 0.25, 0.25, seed=3)
    assert [len(p) for p in parts] == [51, 25, 25]
    assert sorted(np.concatenate(parts).tolist()) == list(range(101))
    with pytest.raises(ValueError, match=r"`val_fraction` must be in \[0, 1\), got 1.5"):
        split_indices(10, 1.5, 0.1, seed=0)
    with pytest.raises(ValueError, match=r"must be below 1 to leave training data, got 0.5 \+ 0.5"):
        split_indices(10, 0.5, 0.5, seed=0)


def test_missing_default_config_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "DEFAULT_CONFIG", tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match=r"nope.yaml is missing.*pass --config PATH"):
        demo._with_default_config([])
    assert demo._with_default_config(["--config=x.yaml"]) == ["--config=x.yaml"]


# Lightning's hints for tiny CPU runs and its CLI's use of deprecated jsonargparse APIs are not ours.
@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli")
def test_demo_runs_with_the_default_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    overrides = ["--trainer.max_epochs=2", "--data.max_samples=300", f"--trainer.default_root_dir={tmp_path}"]
    cli = demo.main([*overrides, f"--trainer.logger.init_args.save_dir={tmp_path}"], sklearn_part=False)
    out = capsys.readouterr().out
    (monitor,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, PerClassBCEMonitor)]
    assert [len(monitor.history[s]) for s in ("train", "val", "test")] == [2, 2, 1]
    info = "\n".join(r.getMessage() for r in caplog.records)  # the monitor's table: Lightning's info log
    assert "Per-label BCE, val epoch 1, worst first (change since epoch 0)" in info
    assert all(name in info for name in TAGS)
    assert f"Per-label val BCE heatmap: {monitor.heatmap_path}" in info
    assert monitor.heatmap_path is not None and monitor.heatmap_path.is_relative_to(tmp_path)
    with Image.open(monitor.heatmap_path) as image:
        image.verify()
    assert "Test (bce): macro BCE" in out and "Demo finished in" in out


# `python -m xent_metrics.demos` as a command, from a directory outside the checkout, with the package installed
# from its wheel: tests/packaging/test_wheel.py (it checks what the end-to-end command test here used to).
