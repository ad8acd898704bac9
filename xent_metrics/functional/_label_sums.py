"""Sums of scikit-learn-shaped inputs: the core entry points of the scoring face.

:mod:`xent_metrics.scoring` converts and checks arrays; these functions turn its tensors into the
``(3, K)`` sums of :mod:`xent_metrics.functional._sums` (each row with its one meaning there), which it
reads its results from. No face indexes or splices sums rows. The inputs are already valid: class
indices ``0..C-1``, finite scores in range, non-zero weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._options import MulticlassOptions, MultilabelOptions
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional._sums import LOSS, TARGET, WEIGHT

# scikit-learn's inputs set no class weight, ``pos_weight``, ignored target or smoothing: the default options.


def _softmax_sums(preds: Tensor, target: Tensor, input_format: str, weight: Tensor | None) -> Tensor:
    """``(3, C)`` sums of the categorical kernel, ``weight`` the sample weight."""
    return softmax_ce_sums(preds, target, MulticlassOptions(input_format=input_format), weight)


def _bce_sums(preds: Tensor, target: Tensor, input_format: str, weight: Tensor | None) -> Tensor:
    """``(3, K)`` sums of the binary kernel, ``weight`` the sample weight."""
    return bce_sums(preds, target, MultilabelOptions(input_format=input_format), weight)


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
    label = _bce_sums(preds[rows].unsqueeze(1), target[rows].unsqueeze(1), input_format, weight)
    loss, mass = label[LOSS, 0], label[WEIGHT, 0]
    return torch.stack([loss, mass, mass])  # one-hot targets: the class's target mass is the weight of its rows


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
        columns.append(torch.stack([classes[LOSS].sum(), classes[WEIGHT].sum(), classes[TARGET, 1]]))
    return torch.stack(columns, 1)
