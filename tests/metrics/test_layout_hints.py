"""A language-model layout passed the wrong way round is refused with the fix: `movedim`, or the other class."""

import pytest
import torch

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity
from xent_metrics.functional import multiclass_cross_entropy, multiclass_normalized_entropy

B, L, V = 2, 3, 5
HINT = r"The classes look to be in the last dimension \(a \(B, L, V\) language-model layout, V=5\)"
HARD_FIX = HINT + r": pass `preds\.movedim\(-1, 1\)` \(`target` as is\), or use `Perplexity`"
SOFT_FIX = HINT + r": pass `preds\.movedim\(-1, 1\)` and `target\.movedim\(-1, 1\)`\.$"


def _lm_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(B, L, V, generator=torch.Generator().manual_seed(3)), torch.tensor([[0, 4, 2], [1, 3, 0]])


@pytest.mark.parametrize("cls", [MulticlassCrossEntropy, MulticlassNormalizedEntropy])
def test_metric_with_classes_last_names_movedim_and_perplexity(cls: type) -> None:
    metric = cls(num_classes=V)
    preds, target = _lm_batch()
    metric.update(preds.movedim(-1, 1), target)  # the right layout is accepted
    before = metric.sums.clone()
    shape_error = r"`preds` has 3 classes in dimension 1 \(shape \(2, 3, 5\)\) but num_classes=5\. "
    with pytest.raises(ValueError, match=shape_error + HARD_FIX):
        metric.update(preds, target)
    assert torch.equal(metric.sums, before)


@pytest.mark.parametrize("fn", [multiclass_cross_entropy, multiclass_normalized_entropy])
def test_functional_without_num_classes_names_movedim(fn) -> None:
    preds, target = _lm_batch()
    target_error = r"`target` must hold class indices of shape \(2, 5\).*got \(2, 3\) \(torch\.int64\)\. "
    with pytest.raises(ValueError, match=target_error + HARD_FIX):
        fn(preds, target)
    with pytest.raises(ValueError, match=r"num_classes=5\. " + HARD_FIX):
        fn(preds, target, num_classes=V)


def test_soft_targets_classes_last_name_both_movedims() -> None:
    preds, _ = _lm_batch()
    soft = torch.softmax(torch.randn(B, L, V, generator=torch.Generator().manual_seed(4)), dim=-1)
    with pytest.raises(ValueError, match=r"num_classes=5\. " + SOFT_FIX):
        MulticlassCrossEntropy(num_classes=V).update(preds, soft)


@pytest.mark.parametrize(
    ("preds_shape", "target_shape", "num_classes"),
    [
        ((2, 3, 4), (2, 3), 5),  # the last dimension is not num_classes either
        ((2, 3, 5), (2, 4), 5),  # target matches no layout
        ((2, 3), (2,), 5),  # a plain (N, C) batch with the wrong C
    ],
)
def test_no_hint_when_the_shapes_are_not_a_language_model_layout(preds_shape, target_shape, num_classes) -> None:
    with pytest.raises(ValueError) as info:
        MulticlassCrossEntropy(num_classes=num_classes).update(
            torch.zeros(preds_shape), torch.zeros(target_shape, dtype=torch.long)
        )
    assert "movedim" not in str(info.value)


def test_perplexity_with_classes_in_dimension_1_names_movedim_and_multiclass() -> None:
    preds, target = _lm_batch()
    metric = Perplexity()
    with pytest.raises(
        ValueError,
        match=r"got preds \(2, 5, 3\) and target \(2, 3\)\. The vocabulary looks to be in dimension 1 "
        r"\(F\.cross_entropy's \(B, V, L\) layout, V=5\): pass `preds\.movedim\(1, -1\)`, or use "
        r"`MulticlassCrossEntropy`",
    ):
        metric.update(preds.movedim(-1, 1), target)
    assert metric.sums.count_nonzero() == 0
    with pytest.raises(ValueError, match=r"vocabulary last and V >= 2") as info:
        metric.update(preds, target[:, :2])  # (B, L, V) with a short target: no layout fits, no hint
    assert "movedim" not in str(info.value)
