"""One state layout per configuration: micro cross-entropy keeps (3, 1) totals; older (3, C) checkpoints still load."""

import pytest
import torch
import torch.nn.functional as F
from helpers import cases

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(12)
    z, target = cases.batch("multiclass", 40, 5, generator=g, dtype=torch.float64)
    return z, target, torch.rand(40, generator=g, dtype=torch.float64)


def test_layouts_per_configuration() -> None:
    assert MulticlassCrossEntropy(5).sums.shape == (3, 1)
    assert Perplexity().sums.shape == (3, 1)
    for metric in (MulticlassCrossEntropy(5, average="none"), MulticlassCrossEntropy(5, average="macro")):
        assert metric.sums.shape == (3, 5)
    assert MulticlassNormalizedEntropy(5).sums.shape == (3, 5)  # the class prior needs per-class mass


def test_micro_totals_merge_exactly_and_equal_the_reference() -> None:
    z, t, s = _data()
    expected = (F.cross_entropy(z.double(), t, reduction="none") * s.double()).sum() / s.double().sum()
    first, second = MulticlassCrossEntropy(5), MulticlassCrossEntropy(5)
    first.update(z[:13], t[:13], s[:13])
    second.update(z[13:], t[13:], s[13:])
    first.merge_state(second)
    torch.testing.assert_close(first.compute(), expected, rtol=1e-12, atol=0)


def test_a_per_class_checkpoint_loads_into_a_micro_metric_as_its_totals() -> None:
    z, t, s = _data()
    old_layout = MulticlassCrossEntropy(5, average="none")  # the (3, C) layout every metric had before
    old_layout.update(z, t, s)
    micro = MulticlassCrossEntropy(5)
    micro.load_state_dict(old_layout.state_dict())
    expected = (F.cross_entropy(z.double(), t, reduction="none") * s.double()).sum() / s.double().sum()
    assert micro.sums.shape == (3, 1)
    torch.testing.assert_close(micro.compute(), expected, rtol=1e-12, atol=0)


def test_totals_cannot_become_per_class_sums() -> None:
    micro = MulticlassCrossEntropy(5)
    per_class = MulticlassCrossEntropy(5, average="none")
    with pytest.raises(ValueError, match=r"state_dict\['sums'\].*shape \(3, 5\).*got shape \(3, 1\)"):
        per_class.load_state_dict(micro.state_dict())
    assert torch.equal(per_class.sums, torch.zeros(3, 5, dtype=torch.float64))
