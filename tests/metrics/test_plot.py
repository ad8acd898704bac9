"""`metric.plot()`: a value, a history over steps, per-class bars with names; MetricTracker; lazy matplotlib.

Headless: the Agg backend. Expected values come from torch.nn.functional in float64 (or the input itself,
for what a plot must draw of a given `val`).
"""

import functools
import math
import subprocess
import sys
from collections.abc import Callable, Iterator

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from helpers import cases
from torchmetrics import MetricCollection
from torchmetrics.wrappers import MetricTracker

from xent_metrics import (
    BinaryCrossEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend
from matplotlib.figure import Figure

N, C = 6, 3
GEN = torch.Generator().manual_seed(16)
Z1 = torch.randn(N, generator=GEN, dtype=torch.float64) * 1.3
Y1 = torch.tensor([1, 0, 0, 1, 1, 0])
ZC = torch.randn(N, C, generator=GEN, dtype=torch.float64) * 1.3
YC = torch.tensor([0, 2, 1, 2, 0, 2])
YL = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
ZLM = torch.randn(2, 3, 4, generator=GEN, dtype=torch.float64) * 1.3
YLM = torch.tensor([[0, 3, 1], [2, 2, 0]])


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.log()).sum(-1)


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    return _entropy(torch.stack([p, 1 - p], -1))


def _bce() -> float:
    return F.binary_cross_entropy_with_logits(Z1.double(), Y1.double()).item()


def _mce() -> float:
    return F.cross_entropy(ZC.double(), YC).item()


def _mlce_per_label() -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(ZC.double(), YL.double(), reduction="none").mean(0)


def _make(name: str) -> Callable:
    return functools.partial(cases.make, name, C)


CASES: dict[str, tuple[Callable, tuple, Callable[[], float]]] = {
    "bce": (_make("BinaryCrossEntropy"), (Z1, Y1), _bce),
    "bne": (_make("BinaryNormalizedEntropy"), (Z1, Y1), lambda: _bce() / _binary_entropy(Y1.double().mean()).item()),
    "mce": (_make("MulticlassCrossEntropy"), (ZC, YC), _mce),
    "mne": (
        _make("MulticlassNormalizedEntropy"),
        (ZC, YC),
        lambda: _mce() / _entropy(torch.bincount(YC, minlength=C).double() / N).item(),
    ),
    "mlce": (_make("MultilabelCrossEntropy"), (ZC, YL), lambda: _mlce_per_label().mean().item()),
    "mlne": (
        _make("MultilabelNormalizedEntropy"),
        (ZC, YL),
        lambda: (_mlce_per_label().sum() / _binary_entropy(YL.double().mean(0)).sum()).item(),
    ),
    "ppl": (
        _make("Perplexity"),
        (ZLM, YLM),
        lambda: math.exp(F.cross_entropy(ZLM.double().movedim(-1, 1), YLM).item()),
    ),
}


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.mark.parametrize("case", sorted(CASES))
def test_plot_without_val_draws_compute_as_one_point(case: str) -> None:
    make, batch, expected = CASES[case]
    metric = make()
    metric.update(*batch)
    fig, ax = metric.plot()
    assert isinstance(fig, Figure) and ax.figure is fig
    assert ax.get_ylabel() == type(metric).__name__
    (line,) = ax.lines
    assert line.get_ydata().tolist() == pytest.approx([expected()], rel=1e-12)


def test_list_of_forward_values_is_a_line_over_steps() -> None:
    metric = BinaryCrossEntropy(input_format="probs")
    probs = (0.3, 0.7, 0.9, 0.6)
    history = [metric(torch.tensor([p], dtype=torch.float64), torch.tensor([1])) for p in probs]
    _, ax = metric.plot(history)
    (line,) = ax.lines
    assert line.get_ydata().tolist() == pytest.approx([-math.log(p) for p in probs], rel=1e-12)
    assert ax.get_xlabel() == "Step" and list(ax.get_xticks()) == [0, 1, 2, 3]


def test_metric_tracker_plots_and_its_history_plots_through_the_metric() -> None:
    tracker = MetricTracker(BinaryCrossEntropy(input_format="probs"))
    epochs = [torch.tensor(p, dtype=torch.float64) for p in ([0.3, 0.8], [0.6, 0.9], [0.2, 0.7])]
    target = torch.tensor([1, 0])
    for probs in epochs:
        tracker.increment()
        tracker.update(probs, target)
    expected = [F.binary_cross_entropy(p.double(), target.double()).item() for p in epochs]
    _, ax = tracker.plot()  # torchmetrics' own tracker plot: one point per epoch
    assert [line.get_ydata()[0] for line in ax.lines] == pytest.approx(expected, rel=1e-12)
    _, ax = tracker[-1].plot(tracker.compute_all())  # the (epochs,) history as one line
    assert ax.lines[0].get_ydata().tolist() == pytest.approx(expected, rel=1e-12)


def _per_true_class_ce() -> list[float]:
    losses = F.cross_entropy(ZC.double(), YC, reduction="none")
    return [losses[YC == c].mean().item() for c in range(C)]


def test_average_none_is_a_bar_chart_with_class_names() -> None:
    metric = MulticlassCrossEntropy(C, average="none")
    metric.update(ZC, YC)
    _, ax = metric.plot(names=["cat", "dog", "bird"])
    assert [float(bar.get_height()) for bar in ax.patches] == pytest.approx(_per_true_class_ce(), rel=1e-12)
    assert [label.get_text() for label in ax.get_xticklabels()] == ["cat", "dog", "bird"]
    assert ax.get_ylim()[0] == 0.0


def test_default_names_are_classes_or_labels_and_missing_data_has_no_bar() -> None:
    metric = MulticlassCrossEntropy(C, average="none")
    metric.update(ZC[:2], YC[:2])  # classes 0 and 2 only
    _, ax = metric.plot()
    heights = [float(bar.get_height()) for bar in ax.patches]
    assert math.isnan(heights[1]) and not math.isnan(heights[0])
    assert [label.get_text() for label in ax.get_xticklabels()] == ["Class 0", "Class 1", "Class 2"]
    multilabel = MultilabelCrossEntropy(C, average="none")
    multilabel.update(ZC, YL)
    _, ax = multilabel.plot()
    assert [label.get_text() for label in ax.get_xticklabels()] == ["Label 0", "Label 1", "Label 2"]
    assert [float(bar.get_height()) for bar in ax.patches] == pytest.approx(_mlce_per_label().tolist(), rel=1e-12)


def test_per_class_history_is_one_named_line_per_class() -> None:
    tracker = MetricTracker(MultilabelCrossEntropy(C, average="none"))
    for rows in (slice(0, 3), slice(3, 6)):
        tracker.increment()
        tracker.update(ZC[rows], YL[rows])
    _, ax = tracker[-1].plot(tracker.compute_all(), names=["a", "b", "c"])
    per_step = [
        F.binary_cross_entropy_with_logits(ZC[r].double(), YL[r].double(), reduction="none").mean(0)
        for r in (slice(0, 3), slice(3, 6))
    ]
    assert [line.get_label() for line in ax.lines] == ["a", "b", "c"]
    for k, line in enumerate(ax.lines):
        assert line.get_ydata().tolist() == pytest.approx([step[k].item() for step in per_step], rel=1e-12)


def test_draws_on_a_given_axes_and_in_a_metric_collection() -> None:
    fig, given = plt.subplots()
    metric = MulticlassCrossEntropy(C)
    metric.update(ZC, YC)
    out_fig, out_ax = metric.plot(ax=given)
    assert out_ax is given and out_fig is fig
    collection = MetricCollection({"ce": MulticlassCrossEntropy(C), "ne": MulticlassNormalizedEntropy(C)})
    collection.update(ZC, YC)
    (_, ce_ax), (_, ne_ax) = collection.plot()
    assert ce_ax.lines[0].get_ydata().tolist() == pytest.approx([_mce()], rel=1e-12)
    assert ne_ax.get_ylabel() == "MulticlassNormalizedEntropy"


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (BinaryCrossEntropy, {"val": 0.3}, TypeError, r"`val` must be a Tensor .* got float"),
        (BinaryCrossEntropy, {"val": []}, TypeError, r"a non-empty list of them, or None .* got list"),
        (BinaryCrossEntropy, {"val": torch.zeros(2, 2)}, ValueError, r"single value of shape \(\) .* shape \(2, 2\)"),
        (
            lambda: MulticlassCrossEntropy(C, average="none"),
            {"val": torch.tensor(0.3)},
            ValueError,
            r"per-class values of shape \(K,\) \(average='none'\) or a list of them over steps, got shape \(\)",
        ),
        (BinaryCrossEntropy, {"val": [torch.tensor(0.3), torch.zeros(2)]}, ValueError, r"one shape, got shapes"),
        (
            BinaryCrossEntropy,
            {"val": torch.tensor(0.3), "names": ["a"]},
            ValueError,
            r"this BinaryCrossEntropy gives a single value; construct it with average='none'",
        ),
        (
            lambda: MulticlassCrossEntropy(C, average="none"),
            {"val": torch.zeros(C), "names": ["a", "b"]},
            ValueError,
            r"one name per class: 3, got 2 names",
        ),
        (
            lambda: MulticlassCrossEntropy(C, average="none"),
            {"val": torch.zeros(C), "names": "abc"},
            TypeError,
            r"`names` must be a list of str, one per class, got 'abc'",
        ),
    ],
)
def test_bad_plot_arguments(make: Callable, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make().plot(**kwargs)


def test_import_adds_no_matplotlib_and_plot_without_it_says_how_to_install() -> None:
    # torchmetrics imports matplotlib itself; after that it is removed and blocked, so any import of it
    # by xent_metrics fails, as on a machine without matplotlib.
    code = """
import sys, torch, torchmetrics
for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
    del sys.modules[name]
sys.modules["matplotlib"] = None
import xent_metrics, xent_metrics.functional
metric = xent_metrics.BinaryCrossEntropy()
metric.update(torch.zeros(2), torch.tensor([0, 1]))
try:
    metric.plot()
except ModuleNotFoundError as err:
    print("refused:", err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused: `plot` needs matplotlib, which is not installed: `pip install matplotlib`" in out.stdout
