"""Sums of (weighted) categorical cross-entropy, per true class, over cache-sized row chunks."""

from __future__ import annotations

import torch
from torch import Tensor

from xent_metrics.functional._bce import labels_last, position_weight
from xent_metrics.functional._chunks import compute_dtype, row_slices
from xent_metrics.functional._sums import LOSS, TARGET, WEIGHT, new_sums


def log_probs_of(preds: Tensor, input_format: str, eps: float) -> Tensor:
    """Full ``(m, C)`` log-probabilities of a chunk: log-softmax, clipped log, or as given."""
    if input_format == "logits":
        return preds - torch.logsumexp(preds, dim=1, keepdim=True)
    if input_format == "probs":
        return torch.log(preds.clamp(eps, 1 - eps))
    return preds


def log_prob_of_target(preds: Tensor, target: Tensor, input_format: str, eps: float) -> Tensor:
    """``log p[i, target_i]`` of a ``(m, C)`` chunk without materialising the full log-probabilities."""
    picked = preds.gather(1, target[:, None]).squeeze(1)
    if input_format == "logits":
        return picked - torch.logsumexp(preds, dim=1)
    if input_format == "probs":
        return torch.log(picked.clamp(eps, 1 - eps))
    return picked


def _hard_chunk(
    sums: Tensor, z: Tensor, t: Tensor, w: Tensor | None, class_weight: Tensor | None, opts: tuple
) -> None:
    """Add one chunk of hard (class index) targets into ``sums``; ``w`` holds the position weights."""
    input_format, ignore_index, smoothing, eps = opts
    num_classes = z.shape[1]
    if ignore_index is not None:
        keep = t != ignore_index
        t = t.masked_fill(~keep, 0)
        w = keep.to(torch.float64) if w is None else w * keep
    w = torch.ones(t.shape[0], dtype=torch.float64, device=z.device) if w is None else w
    if smoothing:
        log_p = log_probs_of(z, input_format, eps)
        log_p_t = log_p.gather(1, t[:, None]).squeeze(1).to(torch.float64)
        smooth = (log_p if class_weight is None else log_p * class_weight.to(log_p.dtype)).sum(1, dtype=torch.float64)
    else:
        log_p_t = log_prob_of_target(z, t, input_format, eps).to(torch.float64)
    w_t = w if class_weight is None else w * class_weight[t]
    nll = -log_p_t * (1 - smoothing)
    loss = nll * w_t if not smoothing else nll * w_t - smooth * (w * smoothing / num_classes)
    loss = torch.where(w != 0, loss, 0) if input_format == "log_probs" else loss
    sums[LOSS].index_add_(0, t, loss)
    sums[WEIGHT].index_add_(0, t, w_t)
    sums[TARGET].index_add_(0, t, w * (1 - smoothing))
    if smoothing:
        sums[TARGET] += w.sum() * (smoothing / num_classes)


def _soft_chunk(sums: Tensor, z: Tensor, y: Tensor, w: Tensor | None, class_weight: Tensor | None, opts: tuple) -> None:
    """Add one chunk of soft (probability) targets into ``sums``."""
    input_format, _, smoothing, eps = opts
    if smoothing:
        y = y * (1 - smoothing) + smoothing / z.shape[1]
    mass = y.to(torch.float64) if w is None else y * w[:, None]
    log_p = log_probs_of(z, input_format, eps)
    loss = torch.where(mass != 0, mass * log_p, 0) if input_format == "log_probs" else mass * log_p
    loss = -loss.sum(0)
    sums[LOSS] += loss if class_weight is None else loss * class_weight
    sums[WEIGHT] += mass.sum(0)
    sums[TARGET] += mass.sum(0)


def softmax_ce_sums(
    preds: Tensor,
    target: Tensor,
    *,
    input_format: str,
    class_weight: Tensor | None,
    sample_weight: Tensor | None,
    ignore_index: int | None,
    label_smoothing: float,
) -> Tensor:
    """Return ``(3, C)`` float64 sums for ``(N, C, ...)`` preds and ``(N, ...)`` or ``(N, C, ...)`` targets.

    Hard targets put each sample's loss and weight ``sample_weight * weight[target]`` on its true
    class; soft targets spread them by target mass (torch's rule: the mean is over
    ``sum(sample_weight)``, class weights scale the numerator only).
    """
    num_classes = preds.shape[1]
    sums = new_sums(num_classes, preds.device)
    dtype = compute_dtype(preds.dtype)
    opts = (input_format, ignore_index, label_smoothing, torch.finfo(preds.dtype).eps)
    cw = None if class_weight is None else class_weight.to(torch.float64)
    soft = target.shape == preds.shape
    for rows in row_slices(preds.shape[0], preds[:1].numel()):
        z = labels_last(preds[rows]).to(dtype)
        w = None if sample_weight is None else position_weight(sample_weight[rows], preds[rows].shape).double()
        if soft:
            _soft_chunk(sums, z, labels_last(target[rows]).to(dtype), w, cw, opts)
        else:
            _hard_chunk(sums, z, target[rows].reshape(-1).long(), w, cw, opts)
    return sums
