"""The state's rules at construction: float64 everywhere but MPS (no device needed to ask), counts that size the
state, and fixed weights kept in the state dtype however they were given."""

from __future__ import annotations

import pytest
import torch

from xent_metrics import BinaryCrossEntropy, MulticlassCrossEntropy, MultilabelCrossEntropy
from xent_metrics.metrics import _state


def test_mps_holds_float32_sums_with_a_warning_and_other_devices_float64() -> None:
    with pytest.warns(UserWarning, match=r"Device mps does not support float64: the metric sums fall back to float32"):
        assert _state.state_dtype("mps") == torch.float32
    for device in ("cpu", "cuda", "meta", torch.device("cuda", 1)):
        assert _state.state_dtype(device) == torch.float64


@pytest.mark.parametrize("bad", [None, 3.0, True, "4"])
def test_a_count_that_sizes_the_state_must_be_an_int(bad: object) -> None:
    for cls, name in ((MulticlassCrossEntropy, "num_classes"), (MultilabelCrossEntropy, "num_labels")):
        with pytest.raises(TypeError, match=rf"`{name}` must be a positive int \(it sizes the metric state\), got"):
            cls(bad)


@pytest.mark.parametrize("given", [torch.float16, torch.float32, torch.float64, torch.int64])
def test_fixed_weights_are_kept_in_float64_whatever_their_dtype(given: torch.dtype) -> None:
    weight = torch.tensor([1, 3, 2]).to(given)
    metric = MulticlassCrossEntropy(3, weight=weight)
    assert metric.task.weight.dtype == torch.float64 and torch.equal(metric.task.weight, weight.double())
    pos = MultilabelCrossEntropy(3, pos_weight=weight).task.pos_weight
    assert pos.dtype == torch.float64 and torch.equal(pos, weight.double())
    assert BinaryCrossEntropy(pos_weight=2).task.pos_weight.dtype == torch.float64
    weight.add_(1)  # a copy: the caller's tensor is not held
    assert torch.equal(metric.task.weight, torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64))


def test_a_fixed_weight_must_hold_data() -> None:
    with pytest.raises(ValueError, match=r"`weight` is on the meta device and holds no data"):
        MulticlassCrossEntropy(3, weight=torch.empty(3, device="meta"))
    with pytest.raises(ValueError, match=r"`pos_weight` is on the meta device and holds no data"):
        MultilabelCrossEntropy(3, pos_weight=torch.empty(3, device="meta"))
