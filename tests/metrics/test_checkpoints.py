"""Safe checkpoints: metric and callback states through ``torch.save`` / ``torch.load(weights_only=True)``.

Every Metric class (with its options: weights, ``ignore_index``, smoothing, averages) and
``PerClassBCEMonitor`` is fed the first half of its batches and saved; a **fresh Python process**
loads the file with ``weights_only=True`` (no pickled objects), restores new instances, feeds the
second half and saves the results, again as plain tensors (and each metric's layout text). They must
equal, bit for bit, an uninterrupted run in this process. Older layouts: a monitor state without the
history (or other keys, or the metrics' layout) loads; a metric or monitor state without ``sums``, or
with ``sums`` of another shape or layout, is refused with a message naming the key (``strict=False``
reports the missing key instead).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torchmetrics import Metric

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)
from xent_metrics.callbacks import PerClassBCEMonitor

Batch = tuple[torch.Tensor, ...]
NUM_BATCHES, SAVED_AFTER = 6, 3
LABELS = ["cat", "dog", "bird"]
EPOCH_ENDS = (1, 4)  # the monitor's epochs end after these steps: the save (after step 2) and the end are mid-epoch


def _batches(kind: str, seed: int = 11) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    out: list[Batch] = []
    for i in range(NUM_BATCHES):
        n = 5 + i
        weight = torch.rand(n, generator=g, dtype=torch.float64) * 2
        if kind == "binary":
            target = torch.randint(0, 2, (n,), generator=g)
            target[0] = -1  # ignored
            out.append((torch.randn(n, generator=g, dtype=torch.float64) * 3, target, weight))
        elif kind == "probs":
            out.append((torch.rand(n, generator=g, dtype=torch.float64), torch.randint(0, 2, (n,), generator=g)))
        elif kind == "multiclass":
            target = torch.randint(0, 4, (n,), generator=g)
            target[1] = -100
            out.append((torch.randn(n, 4, generator=g, dtype=torch.float64), target, weight))
        elif kind == "multilabel":
            out.append((torch.randn(n, 3, generator=g), torch.randint(0, 2, (n, 3), generator=g)))
        else:  # language model: (B, L, V) logits and (B, L) token ids with padding
            target = torch.randint(0, 7, (n, 4), generator=g)
            target[:, -1] = -100
            out.append((torch.randn(n, 4, 7, generator=g), target))
    return out


# name: (factory, batch kind). Fixed weights live in the constructor arguments, not in the state.
CONFIGS: dict[str, tuple[Callable[[], Metric], str]] = {
    "BinaryCrossEntropy": (lambda: BinaryCrossEntropy(pos_weight=2.0, ignore_index=-1), "binary"),
    "BinaryNormalizedEntropy": (lambda: BinaryNormalizedEntropy(input_format="probs", label_smoothing=0.1), "probs"),
    "MulticlassCrossEntropy": (lambda: MulticlassCrossEntropy(4, ignore_index=-100, average="none"), "multiclass"),
    "MulticlassNormalizedEntropy": (
        lambda: MulticlassNormalizedEntropy(4, weight=torch.tensor([1.0, 2.0, 0.5, 1.0]), ignore_index=-100),
        "multiclass",
    ),
    "MultilabelCrossEntropy": (lambda: MultilabelCrossEntropy(3, average="macro"), "multilabel"),
    "MultilabelNormalizedEntropy": (lambda: MultilabelNormalizedEntropy(3, average="none"), "multilabel"),
    "Perplexity": (lambda: Perplexity(ignore_index=-100), "lm"),
}


class _Trainer:
    """What the monitor's epoch end reads from the trainer."""

    sanity_checking = False
    current_epoch = 0
    global_step = 0


class _Module:
    def log_dict(self, *args: Any, **kwargs: Any) -> None:
        pass


def _monitor() -> PerClassBCEMonitor:
    return PerClassBCEMonitor(labels=LABELS, stages=["train", "val"], print_table=False, save_heatmap=False)


def _monitor_step(monitor: PerClassBCEMonitor, step: int, batch: Batch) -> None:
    """Batch ``step`` of a run: a train and a val batch, then the epoch end after the steps in ``EPOCH_ENDS``."""
    trainer, outputs = _Trainer(), {"preds": batch[0], "target": batch[1]}
    trainer.current_epoch, trainer.global_step = sum(step > end for end in EPOCH_ENDS), step + 1
    monitor.on_train_batch_end(trainer, _Module(), outputs, None, step)  # type: ignore[arg-type]
    monitor.on_validation_batch_end(trainer, _Module(), outputs, None, step)  # type: ignore[arg-type]
    if step in EPOCH_ENDS:
        monitor.on_train_epoch_end(trainer, _Module())  # type: ignore[arg-type]
        monitor.on_validation_epoch_end(trainer, _Module())  # type: ignore[arg-type]


def _results(metrics: dict[str, Metric], monitor: PerClassBCEMonitor) -> dict[str, Any]:
    """Everything compared after the run, as plain tensors, lists and floats."""
    out: dict[str, Any] = {f"{name}/value": m.compute() for name, m in metrics.items()}
    out.update({f"{name}/sums": m.sums.clone() for name, m in metrics.items()})
    out["monitor/history"] = copy.deepcopy(monitor.history)
    out["monitor/train"] = monitor.metrics["train"].compute()
    return out


def _run(start: int, stop: int, metrics: dict[str, Metric], monitor: PerClassBCEMonitor) -> None:
    for name, (_, kind) in CONFIGS.items():
        for batch in _batches(kind)[start:stop]:
            metrics[name].update(*batch)
    for step, batch in enumerate(_batches("multilabel")[start:stop], start=start):
        _monitor_step(monitor, step, batch)


def resume_in_this_process(directory: str) -> None:
    """The fresh process: load the checkpoint with weights_only=True, finish the run, save the results."""
    saved = torch.load(Path(directory, "checkpoint.pt"), weights_only=True)
    metrics = {name: factory() for name, (factory, _) in CONFIGS.items()}
    for name, metric in metrics.items():
        metric.load_state_dict(saved["metrics"][name])
    monitor = _monitor()
    monitor.load_state_dict(saved["monitor"])
    _run(SAVED_AFTER, NUM_BATCHES, metrics, monitor)
    torch.save(_results(metrics, monitor), Path(directory, "resumed.pt"))


@pytest.mark.slow
def test_states_round_trip_weights_only_through_a_fresh_process_and_resume_bit_for_bit(tmp_path: Path) -> None:
    full = {name: factory() for name, (factory, _) in CONFIGS.items()}
    full_monitor = _monitor()
    _run(0, NUM_BATCHES, full, full_monitor)
    expected = _results(full, full_monitor)

    head = {name: factory() for name, (factory, _) in CONFIGS.items()}
    head_monitor = _monitor()
    _run(0, SAVED_AFTER, head, head_monitor)
    assert head_monitor.history["train"] and head_monitor.metrics["train"].update_count  # history and sums in progress
    checkpoint = {"metrics": {n: m.state_dict() for n, m in head.items()}, "monitor": head_monitor.state_dict()}
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain types only, here too

    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_checkpoints as t; "
    code += f"t.resume_in_this_process({str(tmp_path)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)

    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, equal_nan=True, msg=key)  # bit for bit
        else:
            assert repr(resumed[key]) == repr(value), key  # histories: the same floats (nan included), epochs, steps
    assert [r["epoch"] for r in resumed["monitor/history"]["val"]] == [0, 1]


# ------------------------------------------------------------------------------------------ older layouts
def _fed_monitor() -> PerClassBCEMonitor:
    monitor = _monitor()
    for step, batch in enumerate(_batches("multilabel")[:3]):
        _monitor_step(monitor, step, batch)
    return monitor


def test_a_monitor_state_without_history_or_version_loads() -> None:
    source = _fed_monitor()
    old = {k: v for k, v in source.state_dict().items() if k in ("labels", "in_progress")}
    restored = _monitor()
    restored.load_state_dict(old)
    assert restored.history == {"train": [], "val": []}
    assert torch.equal(restored.metrics["train"].sums, source.metrics["train"].sums)
    restored.load_state_dict({})  # the oldest: nothing saved at all
    assert restored.history == {"train": [], "val": []}


def test_a_monitor_state_saves_the_layout_and_an_older_one_without_it_loads(tmp_path: Path) -> None:
    source = _fed_monitor()
    torch.save(source.state_dict(), tmp_path / "monitor.pt")
    state = torch.load(tmp_path / "monitor.pt", weights_only=True)
    assert state["in_progress"]["train"]["layout"] == str(source.metrics["train"].layout)
    older = {**state, "in_progress": {stage: {"sums": s["sums"]} for stage, s in state["in_progress"].items()}}
    restored = _monitor()
    restored.load_state_dict(older)
    assert torch.equal(restored.metrics["train"].sums, source.metrics["train"].sums)
    probs = PerClassBCEMonitor(labels=LABELS, stages=["train", "val"], input_format="probs")  # another update
    with pytest.raises(ValueError, match=r"in_progress\['train'\] does not fit .*holds the sums of .*'logits'"):
        probs.load_state_dict(state)
    assert torch.equal(probs.metrics["train"].sums, torch.zeros(3, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("in_progress", "match"),
    [
        pytest.param({"train": {}}, r"in_progress\['train'\].*`sums`", id="no-sums"),
        pytest.param(
            {"train": {"sums": torch.zeros(3, 5, dtype=torch.float64)}},
            r"in_progress\['train'\].*shape \(3, 3\).*got shape \(3, 5\)",
            id="other-shape",
        ),
        pytest.param({"train": {"sums": [0.0] * 9}}, r"in_progress\['train'\].*tensor.*got list", id="a-list"),
        pytest.param({"train": "sums"}, r"in_progress\['train'\] must map state names to tensors", id="not-a-dict"),
    ],
)
def test_a_monitor_state_with_a_bad_in_progress_state_is_refused_naming_it(in_progress: dict, match: str) -> None:
    monitor = _fed_monitor()
    before = monitor.metrics["train"].sums.clone()
    with pytest.raises(ValueError, match=match):
        monitor.load_state_dict({"labels": LABELS, "in_progress": in_progress})
    assert torch.equal(monitor.metrics["train"].sums, before)  # nothing half-loaded


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_metric_state_dict_without_sums_is_refused_naming_the_key(name: str) -> None:
    factory, kind = CONFIGS[name]
    metric = factory()
    metric.update(*_batches(kind)[0])
    before = metric.sums.clone()
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "sums"'):
        metric.load_state_dict({})
    result = metric.load_state_dict({}, strict=False)  # torch's convention: reported, state kept
    assert result.missing_keys == ["sums"] and torch.equal(metric.sums, before)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "loss_sum"'):
        factory().load_state_dict({"sums": before, "loss_sum": before[0]})  # another layout's key
