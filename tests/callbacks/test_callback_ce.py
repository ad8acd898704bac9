"""PerClassCEMonitor: per-true-class CE of a multiclass model against float64 torch; the README's Lightning recipe."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.lightning import trainer
from lightning.pytorch.callbacks import Callback
from PIL import Image
from sklearn.metrics import log_loss
from torch.utils.data import DataLoader, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor

# Lightning's hints for tiny CPU runs (few dataloader workers, log interval above the batch count) are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")

CLASSES = ["cat", "dog", "fox"]
ROOT = Path(__file__).resolve().parents[2]


class Classifier(pl.LightningModule):
    """A linear 3-class model; every step returns ``{"loss", "preds", "target"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 3)

    def _step(self, batch):
        x, y = batch
        logits = self.net(x)
        return {"loss": F.cross_entropy(logits, y), "preds": logits.detach(), "target": y}

    def training_step(self, batch, batch_idx):
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        return self._step(batch)

    def test_step(self, batch, batch_idx):
        return self._step(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.3)


class Recorder(Callback):
    """Keeps every (non-sanity) step output, so the reference covers exactly the samples seen."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, torch.Tensor, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(("train", trainer.current_epoch, outputs["preds"].clone(), outputs["target"].clone()))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.seen.append(("val", trainer.current_epoch, outputs["preds"].clone(), outputs["target"].clone()))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen.append(("test", trainer.current_epoch, outputs["preds"].clone(), outputs["target"].clone()))

    def data(self, stage: str, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [(p, t) for s, e, p, t in self.seen if s == stage and e == epoch]
        return torch.cat([p for p, _ in rows]), torch.cat([t for _, t in rows])


def ce_per_class(logits: torch.Tensor, target: torch.Tensor, num_classes: int = 3) -> np.ndarray:
    """Mean float64 softmax CE of the samples of each true class (nan for a class with none)."""
    loss = F.cross_entropy(logits.double(), target, reduction="none")
    return np.array([loss[target == c].mean().item() for c in range(num_classes)])


def data(n: int = 60, seed: int = 0, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=gen) * 1.3, torch.randint(0, classes, (n,), generator=gen)


def test_logged_per_class_ce_equals_float64_reference_table_and_heatmap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    recorder, monitor = Recorder(), PerClassCEMonitor(classes=CLASSES)
    run = trainer(tmp_path, [recorder, monitor])
    loader = DataLoader(TensorDataset(*data()), batch_size=10)
    model = Classifier()
    run.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    run.test(model, dataloaders=loader, verbose=False)

    frame = pd.read_csv(tmp_path / "metrics.csv")
    for stage, epochs in (("train", [0, 1]), ("val", [0, 1]), ("test", [2])):
        rows = frame[frame[f"{stage}/ce"].notna()].reset_index(drop=True)
        assert len(rows) == len(epochs) == len(monitor.history[stage])
        for row, epoch in enumerate(epochs):
            preds, target = recorder.data(stage, epoch)
            expected = ce_per_class(preds, target)
            # float32 logits: the per-sample losses carry float32 rounding; the sums are float64.
            np.testing.assert_allclose(monitor.history[stage][row]["values"], expected, rtol=1e-6)
            logged = rows.loc[row, [f"{stage}/ce/{name}" for name in CLASSES]].to_numpy(dtype=float)
            np.testing.assert_array_equal(logged, monitor.history[stage][row]["values"])
            assert rows.loc[row, f"{stage}/ce"] == pytest.approx(expected.mean(), rel=1e-6)
    assert [r["fn"] for r in monitor.history["val"]] == ["fit", "fit"] and monitor.history["test"][0]["fn"] == "test"
    assert not np.allclose(monitor.history["val"][0]["values"], monitor.history["val"][1]["values"])
    # A second, library-independent reference: scikit-learn's log_loss on each true class's rows.
    preds, target = recorder.data("test", 2)
    probs = torch.softmax(preds.double(), 1).numpy()
    sk = [log_loss(target[target == c].numpy(), probs[target == c], labels=[0, 1, 2]) for c in range(3)]
    np.testing.assert_allclose(monitor.history["test"][0]["values"], sk, rtol=1e-6)

    out = "\n".join(r.getMessage() for r in caplog.records)  # the monitor's rank_zero_info messages among them
    assert "Per-class CE, val epoch 1, worst first (change since epoch 0)" in out
    assert re.search(r"#\s+class\s+val CE\s+change\s+train CE", out)
    assert monitor.heatmap_path == tmp_path / "ce_per_class_val.png"
    assert f"Per-class val CE heatmap: {monitor.heatmap_path}" in out
    with Image.open(monitor.heatmap_path) as image:
        image.verify()


def test_class_without_samples_is_nan_with_one_warning_and_ignore_index(tmp_path: Path) -> None:
    x, y = data(24, seed=1, classes=2)  # class 2 ("fox") never occurs
    y[::4] = -100  # ignored samples
    monitor = PerClassCEMonitor(classes=CLASSES, stages=["val"], ignore_index=-100, print_table=False)
    run = trainer(tmp_path, [monitor], limit_val_batches=None, num_sanity_val_steps=0, logger=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    torch.manual_seed(0)
    model = Classifier()
    with pytest.warns(UserWarning, match=r"PerClassCEMonitor: 1 class\(s\) had no val target.*\['fox'\]") as rec:
        run.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert sum("had no val target" in str(w.message) for w in rec) == 1  # two epochs, one warning
    keep = y != -100
    with torch.no_grad():
        expected = ce_per_class(model.net(x[keep]), y[keep])
    np.testing.assert_allclose(monitor.history["val"][-1]["values"][:2], expected[:2], rtol=1e-6)
    assert np.isnan(monitor.history["val"][-1]["values"][2])
    assert monitor.history["val"][-1]["macro"] == pytest.approx(expected[:2].mean(), rel=1e-6)


def test_state_round_trip_and_two_monitors_in_one_checkpoint() -> None:
    ce, bce = PerClassCEMonitor(num_classes=3, stages=["val"]), PerClassBCEMonitor(num_labels=3, stages=["val"])
    assert ce.state_key != bce.state_key and ce.classes == ["0", "1", "2"]
    preds, target = torch.tensor([[0.3, -1.2, 2.0], [1.1, 0.4, -0.7]]), torch.tensor([2, 0])
    ce.on_validation_batch_end(_NotSanity(), None, {"preds": preds, "target": target}, None, 0)
    ce.history["val"].append({"epoch": 0, "step": 3, "values": [0.5, float("nan"), 0.25], "macro": 0.375})
    twin = PerClassCEMonitor(num_classes=3, stages=["val"])
    twin.load_state_dict(torch.load(_saved(ce.state_dict()), weights_only=True))
    assert twin.history == ce.history or str(twin.history) == str(ce.history)  # nan != nan
    np.testing.assert_allclose(twin.metrics["val"].compute(), ce_per_class(preds, target), rtol=1e-6)
    with pytest.raises(ValueError, match=r"state has 3 classes \['0', '1', '2'\].*same `classes`"):
        PerClassCEMonitor(classes=["a", "b", "c"], stages=["val"]).load_state_dict(ce.state_dict())


def _saved(state: dict) -> object:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


class _NotSanity:
    sanity_checking = False


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({}, ValueError, r"PerClassCEMonitor needs `classes`.*or `num_classes`"),
        ({"classes": ["a", "b"], "num_classes": 3}, ValueError, r"`classes` has 2 names but `num_classes`=3"),
        ({"num_classes": 3.0}, TypeError, r"`num_classes` must be an int, got float 3\.0"),
        ({"classes": ["a", "a"]}, ValueError, r"`classes` must be unique.*\['a'\]"),
        ({"num_classes": 2, "stages": ["fit"]}, ValueError, r"`stages` must be a non-empty list drawn from"),
    ],
)
def test_argument_errors_speak_of_classes(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        PerClassCEMonitor(**options)


def test_step_output_errors_speak_of_classes() -> None:
    monitor = PerClassCEMonitor(classes=CLASSES)
    with pytest.raises(ValueError, match=r"given 3 `classes` \(\['cat', 'dog', 'fox'\]\).*shape \(4, 5\)"):
        monitor.on_train_batch_end(None, None, {"preds": torch.zeros(4, 5), "target": torch.zeros(4)}, None, 0)
    with pytest.raises(TypeError, match="PerClassCEMonitor reads `preds` and `target` from what `test_step`"):
        monitor.on_test_batch_end(None, None, torch.zeros(()), None, 0)


def _readme_recipe() -> str:
    """The README's code block that logs per-class values with a plain LightningModule."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- per-class recipe -->\n```python\n(.*?)```", text, flags=re.S)
    assert match is not None, "README.md lost its per-class recipe block"
    return match.group(1)


def test_the_readme_recipe_logs_exact_per_class_values_and_the_collection_object_fails(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(compile(_readme_recipe(), "README.md", "exec"), namespace)  # defines PerClassLogging
    module_class = type("Logged", (namespace["PerClassLogging"], Classifier), {})
    x, y = data(50, seed=2)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)  # batches that lack a class, and a short last one
    torch.manual_seed(0)
    model = module_class()
    run = trainer(tmp_path, [], max_epochs=1, limit_train_batches=1, limit_val_batches=None, num_sanity_val_steps=0)
    run.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    with torch.no_grad():
        expected = ce_per_class(model.net(x), y)
    logged = [run.callback_metrics[f"val/ce_{name}"].item() for name in ("cat", "dog", "fox")]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)

    class LogsTheCollection(module_class):  # what the issue reports: the collection object given to log_dict
        def validation_step(self, batch, batch_idx):
            out = Classifier.validation_step(self, batch, batch_idx)
            self.val_ce.update(out["preds"], out["target"])
            self.log_dict(self.val_ce)
            return out

    with pytest.raises(ValueError, match=r"compute\(\)` return of the metric logged as 'val/ce' must be a tensor"):
        trainer(tmp_path / "fails", [], max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0).fit(
            LogsTheCollection(), train_dataloaders=loader, val_dataloaders=loader
        )


def test_logging_what_forward_returns_is_not_the_per_class_mean(tmp_path: Path) -> None:
    """The README's warning: Lightning averages the per-batch class means, which is not the epoch's class mean."""
    namespace: dict = {}
    exec(compile(_readme_recipe(), "README.md", "exec"), namespace)

    class LogsForward(namespace["PerClassLogging"], Classifier):
        def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
            self.log_dict(self.val_ce(outputs["preds"], outputs["target"]), batch_size=len(outputs["target"]))

        def on_validation_epoch_end(self):
            self.val_ce.reset()

    x, y = data(50, seed=2)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    torch.manual_seed(0)
    model = LogsForward()
    run = trainer(tmp_path, [], max_epochs=1, limit_train_batches=1, limit_val_batches=None, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        # A batch without some class: the metric warns that the class had no samples, and its value is nan.
        warnings.filterwarnings("ignore", message="No samples with non-zero weight", category=UserWarning)
        run.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    with torch.no_grad():
        expected = ce_per_class(model.net(x), y)
    logged = np.array([run.callback_metrics[f"val/ce_{name}"].item() for name in CLASSES])
    lacking = [c for c in range(3) if any(c not in y[i : i + 8] for i in range(0, 50, 8))]
    assert lacking  # the data has a batch without some class ...
    assert np.isnan(logged[lacking]).all()  # ... and that class's averaged value is nan
    complete = [c for c in range(3) if c not in lacking]
    assert not np.allclose(logged[complete], expected[complete], rtol=1e-3)  # the others are off
