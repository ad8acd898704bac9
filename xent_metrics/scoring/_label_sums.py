"""Sums of scikit-learn-shaped inputs: the scoring face's use of the tasks' ``sums`` step.

:mod:`xent_metrics.scoring` converts and checks arrays (in scikit-learn's words); these functions hand
its tensors to the ``sums`` step of :class:`~xent_metrics.functional.multiclass.MulticlassTask` or
:class:`~xent_metrics.functional.multilabel.MultilabelTask` (scikit-learn sets no class weight,
``pos_weight``, ignored target or smoothing: their default options) and return ``(3, K)`` sums of
:mod:`xent_metrics.functional._sums`, read through its functions. The inputs are already valid:
class indices ``0..C-1``, finite scores in range, non-zero weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from xent_metrics.functional._sums import class_sums_from_label, label_sums_from_classes
from xent_metrics.functional._validation import INPUT_FORMATS, Batch
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.functional.multilabel import MultilabelTask
from xent_metrics.scoring._inputs import MULTILABEL, ScoreBatch

#: The tasks of scikit-learn's inputs: no class weight, ``pos_weight``, ignored target or smoothing.
_MULTICLASS = {fmt: MulticlassTask(input_format=fmt) for fmt in INPUT_FORMATS}
_MULTILABEL = {fmt: MultilabelTask(input_format=fmt) for fmt in INPUT_FORMATS}


def batch_sums(batch: ScoreBatch) -> Tensor:
    """The ``(3, K)`` sums of a checked :class:`~xent_metrics.scoring._inputs.ScoreBatch`: per class or per label."""
    fmt, weight = batch.input_format, batch.sample_weight
    if batch.kind == "outputs":
        return per_output_sums(batch.scores, batch.target, fmt, weight)  # type: ignore[arg-type]
    if batch.kind == MULTILABEL:
        return indicator_sums(batch.scores, batch.target, fmt, weight)  # type: ignore[arg-type]
    return class_label_sums(batch.scores, batch.target, fmt, weight)  # type: ignore[arg-type]


def _softmax_sums(preds: Tensor, target: Tensor, input_format: str, weight: Tensor | None) -> Tensor:
    """``(3, C)`` sums of the multiclass task, ``weight`` the sample weight."""
    return _MULTICLASS[input_format].sums(Batch(preds, target, weight))


def _bce_sums(preds: Tensor, target: Tensor, input_format: str, weight: Tensor | None) -> Tensor:
    """``(3, K)`` sums of the multilabel task, ``weight`` the sample weight."""
    return _MULTILABEL[input_format].sums(Batch(preds, target, weight))


def class_label_sums(preds: Tensor, target: Tensor, input_format: str, sample_weight: Tensor | None) -> Tensor:
    """``(3, C)`` sums per true class of class indices ``target`` (``(n,)``, int64).

    ``(n, C)`` scores go through the categorical kernel. ``(n,)`` scores are the positive class's
    of a binary problem: probabilities become the columns ``(1 - p, p)`` (``log_loss``'s own rule,
    clipped after); logits and log-probabilities go through the binary kernel once per true class,
    which keeps the per-class split that ``average="none"`` / ``"macro"`` read.
    """
    if preds.ndim == 1 and input_format == "probs":
        preds = torch.stack([1 - preds, preds], 1)
    if preds.ndim == 2:
        return _softmax_sums(preds, target, input_format, sample_weight)
    columns = [_true_class_column(preds, target, cls, input_format, sample_weight) for cls in (0, 1)]
    return torch.stack(columns, 1)


def _true_class_column(
    preds: Tensor, target: Tensor, cls: int, input_format: str, sample_weight: Tensor | None
) -> Tensor:
    """The ``(3,)`` sums of class ``cls`` from the binary kernel on the rows whose true class it is."""
    rows = target == cls
    weight = None if sample_weight is None else sample_weight[rows]
    return class_sums_from_label(_bce_sums(preds[rows].unsqueeze(1), target[rows].unsqueeze(1), input_format, weight))


def indicator_sums(preds: Tensor, target: Tensor, input_format: str, sample_weight: Tensor | None) -> Tensor:
    """``(3, K)`` sums per label of an ``(n, K)`` indicator ``target`` with ``(n, K)`` positive-label scores."""
    return _bce_sums(preds, target, input_format, sample_weight)


def per_output_sums(
    outputs: Sequence[Tensor], target: Tensor, input_format: str, sample_weight: Tensor | None
) -> Tensor:
    """``(3, K)`` sums per label of an ``(n, K)`` indicator ``target`` with one ``(n, 2)`` score array per label.

    Each output (multi-output ``predict_proba``: columns for classes 0 and 1) goes through the
    categorical kernel; its two classes add up to the label's loss and weight, and class 1's target
    mass is the label's positive mass.
    """
    columns = []
    for k, scores in enumerate(outputs):
        classes = _softmax_sums(scores, target[:, k].long().contiguous(), input_format, sample_weight)
        columns.append(label_sums_from_classes(classes))
    return torch.stack(columns, 1)
