"""Sums of (weighted) binary cross-entropy over the columns of a ``(M, K)`` matrix.

Shared by the binary task (``K = 1``) and the multilabel task (one column per label).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xent_metrics.functional._chunks import compute_dtype, row_slices
from xent_metrics.functional._sums import LOSS, TARGET, WEIGHT, new_sums

_LOG_HALF = -math.log(2.0)


def _log1mexp(log_p: Tensor) -> Tensor:
    """``log(1 - exp(log_p))`` without cancellation (Maechler, 2012)."""
    return torch.where(log_p > _LOG_HALF, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


def binary_neg_log_terms(preds: Tensor, input_format: str, eps: float) -> tuple[Tensor, Tensor]:
    """Return ``(-log p, -log(1 - p))`` elementwise for logits, probabilities or log-probabilities.

    Logits use ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``, exact in both tails (never
    ``log(sigmoid(z))``); probabilities are clipped to ``[eps, 1 - eps]`` as scikit-learn's ``log_loss``.
    """
    if input_format == "logits":
        softplus = torch.clamp_min(preds, 0).add_(torch.log1p(torch.exp(-preds.abs())))
        return softplus - preds, softplus
    if input_format == "probs":
        return -torch.log(preds.clamp(eps, 1 - eps)), -torch.log((1 - preds).clamp_(eps, 1 - eps))
    return -preds, -_log1mexp(preds)


def _mix(neg_log_p: Tensor, neg_log_q: Tensor, y: Tensor, *, finite: bool) -> Tensor:
    """``y * (-log p) + (1 - y) * (-log(1 - p))`` with ``0 * inf = 0`` (only log-probabilities reach inf)."""
    if finite:
        return neg_log_p.mul_(y).add_(neg_log_q.mul_(1 - y))
    return torch.where(y != 0, neg_log_p * y, 0) + torch.where(y != 1, neg_log_q * (1 - y), 0)


def labels_last(x: Tensor) -> Tensor:
    """View ``(m, K, *rest)`` as ``(m * prod(rest), K)``: one row per position (copies only when ``rest``)."""
    return x if x.ndim == 2 else x.movedim(1, -1).reshape(-1, x.shape[1])


def position_weight(sample_weight: Tensor, shape: torch.Size) -> Tensor:
    """Broadcast a ``(m,)`` or ``(m, *rest)`` weight over ``(m, C, *rest)`` and flatten to ``(m * prod(rest),)``."""
    rest = shape[2:]
    if sample_weight.ndim == 1 and rest:
        sample_weight = sample_weight.reshape(-1, *([1] * len(rest))).expand(shape[0], *rest)
    return sample_weight.reshape(-1)


def bce_sums(
    preds: Tensor,
    target: Tensor,
    *,
    input_format: str,
    sample_weight: Tensor | None,
    pos_weight: Tensor | None,
    ignore_index: int | None,
    label_smoothing: float,
) -> Tensor:
    """Return the ``(3, K)`` float64 sums for ``(M, K, *rest)`` ``preds`` and ``target``.

    ``sample_weight`` is ``(M,)`` or ``(M, *rest)``: one weight per sample or per position, shared
    by the ``K`` labels there.
    """
    num_labels = preds.shape[1]
    sums = new_sums(num_labels, preds.device)
    dtype = compute_dtype(preds.dtype)
    eps = torch.finfo(preds.dtype).eps
    pos = None if pos_weight is None else pos_weight.to(dtype)
    for rows in row_slices(preds.shape[0], preds[:1].numel()):
        y = labels_last(target[rows])
        weight = None
        if ignore_index is not None:
            keep = y != ignore_index
            y = y.masked_fill(~keep, 0)
            weight = keep.to(torch.float64)
        y = y.to(dtype)
        if label_smoothing:
            y = y * (1 - label_smoothing) + label_smoothing / 2
        if sample_weight is not None:
            row_weight = position_weight(sample_weight[rows], preds[rows].shape).to(torch.float64)[:, None]
            weight = row_weight.expand_as(y) if weight is None else weight * row_weight
        neg_log_p, neg_log_q = binary_neg_log_terms(labels_last(preds[rows]).to(dtype), input_format, eps)
        if pos is not None:
            neg_log_p = neg_log_p * pos
        loss = _mix(neg_log_p, neg_log_q, y, finite=input_format != "log_probs")
        if weight is None:
            sums[LOSS] += loss.sum(0, dtype=torch.float64)
            sums[WEIGHT] += y.shape[0]
            sums[TARGET] += y.sum(0, dtype=torch.float64)
        else:
            sums[LOSS] += torch.where(weight != 0, loss * weight, 0).sum(0)
            sums[WEIGHT] += weight.sum(0)
            sums[TARGET] += (y * weight).sum(0)
    return sums
