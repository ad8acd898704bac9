"""Per-row denominators and weighted losses of a 2-D batch, for error-bar rows with one cluster per row.

Where every row of an ``(N, C)`` / ``(N, K)`` batch is its own cluster, taking each cluster's sums with
the task's ``sums`` step costs one call per row. These functions give every row's denominator ``x``
and weighted loss ``y`` in one blockwise pass with the kernels' own per-row pieces: the multiclass
kernel's :func:`~xent_metrics.functional._softmax_ce.target_nll` (class indices, no smoothing), and the
binary kernel :func:`~xent_metrics.functional._bce.bce_sums` on each block viewed as one sample whose
labels are the block's elements. They return ``None`` for what they do not cover (soft targets, label
smoothing, positions beyond dimension 1); the caller then takes the per-cluster path. The batch's
sums are the column sums of the same rows (:func:`sums_of_rows`): one pass over the scores, the
value equal to the task's ``sums`` step's to float64 rounding (the rows are added in another order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._softmax_ce import target_nll
from xent_metrics.functional._sums import LOSS, TARGET, WEIGHT
from xent_metrics.functional._validation import Batch


def multiclass_rows(task: object, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Each row's weight ``sample_weight * weight[target]`` (0 where ignored), weighted loss, target mass, class.

    The target mass is the row's sample weight (0 where ignored), without the class weight (the
    ``TARGET`` row of :mod:`~xent_metrics.functional._sums`).

    ``None`` unless ``(N, C)`` scores with class-index targets and no label smoothing.
    """
    preds, target, sample_weight = batch
    if preds.ndim != 2 or target.shape == preds.shape or task.label_smoothing:  # type: ignore[attr-defined]
        return None
    eps, t = torch.finfo(preds.dtype).eps, target.long()
    ones = torch.ones(t.shape[0], dtype=torch.float64, device=t.device)
    mass = ones if sample_weight is None else sample_weight.double()
    ignore_index, weight = task.ignore_index, task.weight  # type: ignore[attr-defined]
    if ignore_index is not None:
        keep = t != ignore_index
        t, mass = t.masked_fill(~keep, 0), mass * keep
    x = mass if weight is None else mass * weight.to(torch.float64)[t]
    dtype = _chunks.kernel_dtype(preds.dtype, preds.device)
    nll = [
        target_nll(preds[rows].to(dtype), t[rows], task.input_format, eps)  # type: ignore[attr-defined]
        for rows in _chunks.row_slices(preds.shape[0], preds.shape[1])
    ]
    loss = torch.cat(nll) if nll else x.new_zeros(0)
    return x, torch.where(x != 0, loss * x, 0), mass, t


@dataclass(frozen=True)
class _ElementOptions:
    """The binary kernel's options for a block viewed as one sample: ``pos_weight`` repeated per row."""

    input_format: str
    pos_weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float


def label_rows(
    task: object, batch: Batch, moments: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor] | None:
    """The ``(3, K)`` sums of a 2-D batch and the error rows ``moments(x, y)`` of its rows, added block by block.

    ``x`` and ``y`` are a block's ``(m, K)`` weights (0 where ignored) and weighted losses per
    ``(row, label)``; the rows are plain sums, so blocks add. ``None`` beyond 2-D scores.
    """
    preds, target, sample_weight = batch
    if preds.ndim != 2:
        return None
    labels = preds.shape[1]
    pos = task.pos_weight  # type: ignore[attr-defined]
    pos = None if pos is None else torch.as_tensor(pos, dtype=torch.float64, device=preds.device).reshape(-1)
    sums = torch.zeros(3, labels, dtype=torch.float64, device=preds.device)
    rows = moments(sums[:0], sums[:0])
    for block in _chunks.row_slices(preds.shape[0], labels):
        count = block.stop - block.start
        options = _ElementOptions(
            task.input_format,  # type: ignore[attr-defined]
            None if pos is None else pos.expand(labels).repeat(count),
            task.ignore_index,  # type: ignore[attr-defined]
            task.label_smoothing,  # type: ignore[attr-defined]
        )
        elements = bce_sums(preds[block].reshape(1, -1), target[block].reshape(1, -1), options).view(3, count, labels)
        if sample_weight is not None:
            w = sample_weight[block].double()[:, None]
            loss = torch.where(w != 0, elements[LOSS] * w, 0)  # a zero weight removes an infinite loss
            elements = torch.stack([loss, elements[WEIGHT] * w, elements[TARGET] * w])
        sums += elements.sum(1)
        rows += moments(elements[WEIGHT], elements[LOSS])
    return sums, rows


def sums_of_rows(x: Tensor, y: Tensor, mass: Tensor, column: Tensor | None = None, width: int = 1) -> Tensor:
    """The ``(3, K)`` sums of the rows' losses ``y``, weights ``x`` and target masses.

    ``(N, K)`` values are summed over the rows; ``(N,)`` values added to their ``column`` of ``width``.
    """
    rows = torch.stack([y, x, mass])
    if column is None:
        return rows.sum(1)
    return torch.zeros(3, width, dtype=torch.float64, device=x.device).index_add_(1, column, rows)
