"""The end-of-fit heatmap with many labels: the worst, named, at most 1600 px tall, the rest counted in the title."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.lightning import PassThrough, trainer
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from xent_metrics.callbacks import PerClassBCEMonitor, PerClassCEMonitor, _output

pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")

K = 500


def drawn_figure(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep every figure the monitor saves (the saving itself runs as usual)."""
    figures: list[Any] = []
    save = _output.save_png

    def keep(fig: Any, path: Path) -> Path:
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(_output, "save_png", keep)
    return figures


def fit(tmp_path: Path, monitor: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    run = trainer(tmp_path, [monitor], max_epochs=2, limit_train_batches=1, limit_val_batches=None)
    run.fit(PassThrough(preds_key="preds", target_key="target"), train_dataloaders=loader, val_dataloaders=loader)


def multilabel_case() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    gen = torch.Generator().manual_seed(24)
    x = torch.randn(10, K, generator=gen, dtype=torch.float64) * 2.3 + 0.3
    y = torch.randint(0, 2, (10, K), generator=gen)
    per_label = F.binary_cross_entropy_with_logits(x, y.double(), reduction="none").mean(0).numpy()
    assert len(np.unique(per_label)) == K  # no ties: the worst k are one set
    return x, y, per_label


@pytest.mark.slow
@pytest.mark.parametrize(
    ("log_worst_k", "heatmap_max_labels", "drawn"),
    [(20, 50, 20), (None, 50, 50), (200, 50, 50), (20, 600, K), (20, None, K)],
)
def test_500_labels_draw_the_worst_named_and_count_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_worst_k: int | None, heatmap_max_labels: int | None, drawn: int
) -> None:
    x, y, per_label = multilabel_case()
    names = [f"tag_{k:03d}" for k in range(K)]
    figures = drawn_figure(monkeypatch)
    monitor = PerClassBCEMonitor(
        labels=names, stages=["val"], log_worst_k=log_worst_k, heatmap_max_labels=heatmap_max_labels, print_table=False
    )
    fit(tmp_path, monitor, x, y)

    with Image.open(monitor.heatmap_path) as image:
        assert image.format == "PNG" and image.size[1] <= 1600
    (fig,) = figures
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (drawn, 2)  # (rows, epochs)
    title = ax.get_title()
    worst = np.argsort(-per_label, kind="stable")[:drawn]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    if drawn < K:
        assert ticks == [names[k] for k in worst]  # named, worst on top
        np.testing.assert_allclose(ax.images[0].get_array()[:, -1], per_label[worst], rtol=1e-12)
        assert f"worst {drawn} of {K} labels; {K - drawn} not shown" in title
    else:
        assert "not shown" not in title and (drawn > 60 or ticks == [names[k] for k in worst])


@pytest.mark.slow
def test_many_classes_say_classes_in_the_title(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(5)
    classes = 80
    x = torch.randn(4 * classes, classes, generator=gen, dtype=torch.float64) * 1.7
    y = torch.arange(4 * classes) % classes  # every class has 4 samples
    loss = F.cross_entropy(x, y, reduction="none")
    per_class = np.array([loss[y == c].mean().item() for c in range(classes)])
    figures = drawn_figure(monkeypatch)
    monitor = PerClassCEMonitor(num_classes=classes, stages=["val"], heatmap_max_labels=12, print_table=False)
    fit(tmp_path, monitor, x, y)

    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in np.argsort(-per_class)[:12]]
    assert "worst 12 of 80 classes; 68 not shown" in ax.get_title()
    with Image.open(monitor.heatmap_path) as image:
        assert image.size[1] <= 1600


def test_heatmap_max_labels_errors() -> None:
    with pytest.raises(TypeError, match="`heatmap_max_labels` must be an int or None, got str 'all'"):
        PerClassBCEMonitor(num_labels=2, heatmap_max_labels="all")
    with pytest.raises(ValueError, match=r"`heatmap_max_labels` must be at least 1 .* got 0"):
        PerClassCEMonitor(num_classes=2, heatmap_max_labels=0)
