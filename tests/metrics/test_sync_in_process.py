"""The metrics' one-collective sync, in one process: ``torch.distributed.all_reduce`` stands in for a peer.

The spawned tests (``tests/distributed``) run real gloo groups; these run in the suite's process (and in the
mutation subsets) with ``distributed_available_fn`` forced on and an ``all_reduce`` that adds a second rank's
``sums`` (or fails as a crashed peer's would). References: ``torch.nn.functional`` in float64 over both ranks' data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy


def _peer(other: Tensor) -> Callable[..., None]:
    """An ``all_reduce`` whose other rank holds ``other``: it adds it in place, as a SUM over two ranks would."""

    def all_reduce(tensor: Tensor, op: object = None, group: object = None, async_op: bool = False) -> None:
        assert op == torch.distributed.ReduceOp.SUM
        tensor.add_(other)

    return all_reduce


def _failing(tensor: Tensor, op: object = None, group: object = None, async_op: bool = False) -> None:
    raise RuntimeError("[gloo] Connection closed by peer 127.0.0.1:29500")


def _cases(rng: np.random.Generator) -> list[tuple[Callable[[], object], Tensor, Tensor, Callable[..., Tensor]]]:
    """(metric factory, preds, target, float64 reference of the whole data) per task."""
    z = torch.tensor(rng.normal(scale=1.6, size=(30, 5)))
    y = torch.tensor(rng.integers(0, 5, size=30))
    zb, yb = torch.tensor(rng.normal(size=30)), torch.tensor(rng.integers(0, 2, size=30)).double()
    zl, yl = torch.tensor(rng.normal(size=(30, 3))), torch.tensor(rng.integers(0, 2, size=(30, 3))).double()
    return [
        (lambda: MulticlassCrossEntropy(num_classes=5, distributed_available_fn=lambda: True), z, y,
         lambda p, t: F.cross_entropy(p, t)),
        (lambda: MulticlassCrossEntropy(num_classes=5, average="macro", distributed_available_fn=lambda: True), z, y,
         lambda p, t: torch.stack([F.cross_entropy(p[t == c], t[t == c]) for c in range(5)]).mean()),
        (lambda: BinaryCrossEntropy(distributed_available_fn=lambda: True), zb, yb,
         lambda p, t: F.binary_cross_entropy_with_logits(p, t)),
        (lambda: MultilabelCrossEntropy(num_labels=3, average=None, distributed_available_fn=lambda: True), zl, yl,
         lambda p, t: F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(0)),
    ]


def test_compute_sums_both_ranks_keeps_local_state_and_updates_again(monkeypatch: pytest.MonkeyPatch) -> None:
    for preds, target, make, reference in [(p, t, m, r) for m, p, t, r in _cases(np.random.default_rng(7))]:
        mine, theirs = make(), make()
        mine.update(preds[:11].float(), target[:11])
        theirs.update(preds[20:].float(), target[20:])
        local = mine.sums.clone()
        monkeypatch.setattr(torch.distributed, "all_reduce", _peer(theirs.sums))
        both = torch.cat([preds[:11], preds[20:]]), torch.cat([target[:11], target[20:]])
        torch.testing.assert_close(mine.compute().double(), reference(*both), rtol=2e-6, atol=0)
        assert torch.equal(mine.sums, local), "compute() must leave the local (unsynced) sums in place"
        assert not mine._is_synced
        mine.update(preds[11:20].float(), target[11:20])  # torchmetrics refuses an update on a synced metric
        torch.testing.assert_close(mine.compute().double(), reference(preds, target), rtol=2e-6, atol=0)
        torch.testing.assert_close(mine(preds.float(), target).double(), reference(preds, target), rtol=2e-6, atol=0)
        monkeypatch.undo()


def test_a_failed_all_reduce_names_the_metric_and_keeps_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for make, preds, target, reference in _cases(np.random.default_rng(8)):
        metric = make()
        metric.update(preds.float(), target)
        before = metric.sums.clone()
        monkeypatch.setattr(torch.distributed, "all_reduce", _failing)
        name = type(metric).__name__
        with pytest.raises(RuntimeError, match=rf"^{name}\.compute\(\) could not sum its `sums` state") as caught:
            metric.compute()
        message = str(caught.value)
        assert "Connection closed by peer" in message and "every rank must call it" in message
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert torch.equal(metric.sums, before) and not metric._is_synced
        monkeypatch.setattr(torch.distributed, "all_reduce", _peer(torch.zeros_like(before)))
        torch.testing.assert_close(metric.compute().double(), reference(preds, target), rtol=2e-6, atol=0)
        monkeypatch.undo()
