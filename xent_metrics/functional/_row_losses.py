"""Per-row denominators and weighted losses of a 2-D batch, for error-bar rows with one cluster per row.

Where every row of an ``(N, C)`` / ``(N, K)`` batch is its own cluster, taking each cluster's sums with
the task's ``sums`` step costs one call per row. These functions give every row's denominator ``x``
and weighted loss ``y`` in one blockwise pass with the kernels' own per-row pieces: the multiclass
kernel's :func:`~xent_metrics.functional._softmax_ce.target_nll` (class indices, no smoothing), and the
binary kernel :func:`~xent_metrics.functional._bce.bce_sums` on each block viewed as one sample whose
labels are the block's elements. They return ``None`` for what they do not cover (soft targets, label
smoothing, positions beyond dimension 1); the caller then takes the per-cluster path. The batch's
sums themselves still come from the task's ``sums`` step, so the value is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._softmax_ce import target_nll
from xent_metrics.functional._sums import LOSS, WEIGHT
from xent_metrics.functional._validation import Batch


def multiclass_rows(task: object, batch: Batch) -> tuple[Tensor, Tensor, Tensor] | None:
    """Each row's weight ``sample_weight * weight[target]`` (0 where ignored), weighted loss and true class.

    ``None`` unless ``(N, C)`` scores with class-index targets and no label smoothing.
    """
    preds, target, sample_weight = batch
    if preds.ndim != 2 or target.shape == preds.shape or task.label_smoothing:  # type: ignore[attr-defined]
        return None
    eps, t = torch.finfo(preds.dtype).eps, target.long()
    ones = torch.ones(t.shape[0], dtype=torch.float64, device=t.device)
    x = ones if sample_weight is None else sample_weight.double()
    ignore_index, weight = task.ignore_index, task.weight  # type: ignore[attr-defined]
    if ignore_index is not None:
        keep = t != ignore_index
        t, x = t.masked_fill(~keep, 0), x * keep
    if weight is not None:
        x = x * weight.to(torch.float64)[t]
    dtype = _chunks.kernel_dtype(preds.dtype, preds.device)
    nll = [
        target_nll(preds[rows].to(dtype), t[rows], task.input_format, eps)  # type: ignore[attr-defined]
        for rows in _chunks.row_slices(preds.shape[0], preds.shape[1])
    ]
    loss = torch.cat(nll) if nll else x.new_zeros(0)
    return x, torch.where(x != 0, loss * x, 0), t


@dataclass(frozen=True)
class _ElementOptions:
    """The binary kernel's options for a block viewed as one sample: ``pos_weight`` repeated per row."""

    input_format: str
    pos_weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float


def label_rows(task: object, batch: Batch) -> tuple[Tensor, Tensor] | None:
    """Each ``(row, label)``'s weight (0 where ignored) and weighted loss, ``(N, K)``; ``None`` beyond 2-D scores."""
    preds, target, sample_weight = batch
    if preds.ndim != 2:
        return None
    labels = preds.shape[1]
    pos = task.pos_weight  # type: ignore[attr-defined]
    pos = None if pos is None else torch.as_tensor(pos, dtype=torch.float64, device=preds.device).reshape(-1)
    xs, ys = [], []
    for rows in _chunks.row_slices(preds.shape[0], labels):
        count = rows.stop - rows.start
        options = _ElementOptions(
            task.input_format,  # type: ignore[attr-defined]
            None if pos is None else pos.expand(labels).repeat(count),
            task.ignore_index,  # type: ignore[attr-defined]
            task.label_smoothing,  # type: ignore[attr-defined]
        )
        sums = bce_sums(preds[rows].reshape(1, -1), target[rows].reshape(1, -1), options)
        xs.append(sums[WEIGHT].reshape(count, labels))
        ys.append(sums[LOSS].reshape(count, labels))
    empty = torch.zeros(0, labels, dtype=torch.float64, device=preds.device)
    x, y = (torch.cat(xs), torch.cat(ys)) if xs else (empty, empty)
    if sample_weight is None:
        return x, y
    w = sample_weight.double()[:, None]
    return x * w, torch.where(w != 0, y * w, 0)
