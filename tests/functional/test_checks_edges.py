"""Input checks off the common path: a narrow target dtype with ``ignore_index``, tensors on two devices (``meta``
stands in for a second device), a scalar binary batch with a weight, the language-model hint for one sequence, and
the hidden-state head's weight values. Each error names the argument, what was seen and what was expected."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from xent_metrics import MulticlassCrossEntropy
from xent_metrics.functional import binary_cross_entropy, linear_cross_entropy, multiclass_cross_entropy


@pytest.mark.parametrize("validate_args", [True, False])
def test_ignore_index_must_fit_a_narrow_target_dtype(validate_args: bool) -> None:
    target = torch.tensor([0, 1, 2, 0], dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"`ignore_index`=-100 does not fit `target` dtype torch.uint8"):
        multiclass_cross_entropy(torch.randn(4, 3), target, ignore_index=-100, validate_args=validate_args)


def test_target_on_another_device_than_preds() -> None:
    target = torch.empty(4, dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match=r"`target` is on device meta.*`preds`.*cpu"):
        multiclass_cross_entropy(torch.randn(4, 3), target, validate_args=False)


@pytest.mark.parametrize("where", ["meta", "cpu"])
def test_a_metric_refuses_preds_on_another_device_than_its_state(where: str) -> None:
    metric = MulticlassCrossEntropy(3, validate_args=False).to("meta" if where == "cpu" else "cpu")
    preds, target = torch.empty(4, 3, device=where), torch.zeros(4, dtype=torch.long, device=where)
    state = metric.sums.device
    with pytest.raises(ValueError, match=rf"`preds` is on device {where} but the metric state is on {state}"):
        metric.update(preds, target)
    assert metric.update_count == 0


def test_the_language_model_hint_holds_for_a_single_sequence() -> None:
    with pytest.raises(ValueError, match=r"classes look to be in the last dimension.*movedim\(-1, 1\)"):
        MulticlassCrossEntropy(7).update(torch.randn(1, 5, 7), torch.randint(0, 7, (1, 5)))


def test_a_scalar_binary_batch_with_a_weight() -> None:
    got = binary_cross_entropy(torch.tensor(0.3), torch.tensor(1), sample_weight=torch.tensor(2.0))
    want = F.binary_cross_entropy_with_logits(torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.0).double())
    assert float(got) == pytest.approx(float(want), rel=1e-7)


@pytest.mark.parametrize(("bad", "message"), [(-1.0, "must be non-negative"), (math.nan, "contains NaN or inf")])
def test_the_head_checks_sample_weight_values(bad: float, message: str) -> None:
    weight = torch.tensor([1.0, bad, 1.0, 1.0])
    with pytest.raises(ValueError, match=rf"`sample_weight` {message}"):
        linear_cross_entropy(torch.randn(4, 3), torch.randn(6, 3), torch.randint(0, 6, (4,)), sample_weight=weight)

