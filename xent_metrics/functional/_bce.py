"""Sums of (weighted) binary cross-entropy over the columns of a ``(M, K)`` matrix.

Shared by the binary task (``K = 1``) and the multilabel task (one column per label). The hot path
(logits or probabilities, no ``pos_weight``, no autograd) writes each block's elementwise losses
into reused scratch buffers and adds their float64 column sums:

- logits: ``(relu(z) - y z) + log1p(exp(-|z|))`` for any target in ``[0, 1]``: every term is
  non-negative, so a confident correct prediction costs ``exp(-|z|)``, not 0 (``softplus(z) - y z``
  and torch's ``(1 - y) z - logsigmoid(z)`` cancel every digit of one tail);
- probabilities: ``-log p`` where ``y = 1`` and ``-log1p(-p)`` where ``y = 0``, ``p`` clipped to
  ``[eps, 1 - eps]`` exactly as scikit-learn's ``log_loss`` (which takes ``log(1 - p)``: ``1 - p`` rounds
  first, up to ``1e-16 / p`` relative in float64); float targets mix both logs.

The blocks, their dtype and the named scratch buffers come from one plan
(:func:`~xent_metrics.functional._chunks.bce_plan`), asked once per call. Every elementwise op used
gives the same digits for an element wherever it sits in a block (torch's ``softplus`` and ``sigmoid``
do not: their scalar tail loop rounds differently from the vector body), and float32 losses are
widened to float64 before any addition, so the sums do not depend on how rows are split into blocks
or batches. ``pos_weight``, log-probabilities and autograd take the general, out-of-place path.

The dtype policy is the multiclass kernel's (:func:`~xent_metrics.functional._chunks.kernel_dtype`): on the
CPU a block runs in float32 (float64 for float64 input), and the elements whose tail term ``exp(-|z|)``
(logits) or ``exp(log p)`` (log-probabilities) leaves float32's normal range, past ``|z|`` of about 86,
are found by one ``aminmax`` of the block and recomputed from float64 inputs, only those: a loss of
``exp(-690)`` keeps its digits instead of turning subnormal and then 0. Off the CPU every element runs
in float64 (no host read, a fixed number of ops). Probabilities need no second look: clipping keeps
every loss above ``eps``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import BceBuffers, cpu_read, labels_last, position_weight
from xent_metrics.functional._sums import LOSS, NUM_SUMS, TARGET, WEIGHT

if TYPE_CHECKING:
    from xent_metrics.functional._cluster_sums import ClusterSums

_LOG_HALF = -math.log(2.0)


class BceOptions(Protocol):
    """What the binary / multilabel kernel reads of a task's options."""

    @property
    def input_format(self) -> str: ...

    @property
    def pos_weight(self) -> Tensor | float | None: ...

    @property
    def ignore_index(self) -> int | None: ...

    @property
    def label_smoothing(self) -> float: ...


def tail_limit(dtype: torch.dtype) -> float:
    """Arguments ``x >= -tail_limit(dtype)`` keep ``exp(x)`` a normal number of ``dtype`` (a nat to spare)."""
    return -math.log(torch.finfo(dtype).tiny) - 1


def column_sums(values: Tensor, wide: Tensor | None = None) -> Tensor:
    """Exact-order float64 sums over dimension 0 of a ``(m, K)`` block.

    Float32 values are widened to float64 before any addition (into ``wide``, a float64 buffer of
    at least the block's shape, when given), never summed in float32 first: float32 partial sums would
    make the result depend, in the 8th digit, on where blocks and batches start.
    """
    if values.dtype == torch.float64:
        return values.sum(0)
    if wide is None:
        return values.sum(0, dtype=torch.float64)
    return wide[: values.shape[0]].copy_(values).sum(0)


def _log1mexp(log_p: Tensor) -> Tensor:
    """``log(1 - exp(log_p))`` without cancellation (Maechler, 2012)."""
    return torch.where(log_p > _LOG_HALF, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


def binary_neg_log_terms(preds: Tensor, input_format: str, eps: float) -> tuple[Tensor, Tensor]:
    """Return ``(-log p, -log(1 - p))`` elementwise for logits, probabilities or log-probabilities.

    Logits use ``-log p = relu(-z) + log1p(exp(-|z|))`` and ``-log(1 - p) = relu(z) + log1p(exp(-|z|))``,
    exact in both tails (never ``log(sigmoid(z))``, nor ``softplus(z) - z``); probabilities are
    clipped to ``[eps, 1 - eps]`` as scikit-learn's ``log_loss``.
    """
    if input_format == "logits":
        small = torch.log1p(torch.exp(-preds.abs()))
        return torch.clamp_min(-preds, 0) + small, torch.clamp_min(preds, 0) + small
    if input_format == "probs":
        clipped = preds.clamp(eps, 1 - eps)
        return -torch.log(clipped), -torch.log1p(-clipped)  # log1p: 1 - p would round first
    return -preds, -_log1mexp(preds)


def _mix(neg_log_p: Tensor, neg_log_q: Tensor, y: Tensor, n: Tensor, *, finite: bool) -> Tensor:
    """``y * (-log p) + n * (-log(1 - p))``, ``n = 1 - y``, with ``0 * inf = 0`` (only log-probabilities reach inf)."""
    if finite:
        return neg_log_p * y + neg_log_q * n
    return torch.where(y != 0, neg_log_p * y, 0) + torch.where(n != 0, neg_log_q * n, 0)


def _fast_loss(z: Tensor, y: Tensor, n: Tensor | None, input_format: str, eps: float, buffers: BceBuffers) -> Tensor:
    """Elementwise loss of a block into the ``loss`` buffer (logits or probabilities, targets as described above).

    ``n`` is ``1 - y`` for float targets (``None`` for 0 / 1 class indices), computed by :func:`_targets` from the
    given targets: ``relu(z) - y z`` would cancel every digit of a soft target's loss on a confident logit.
    """
    out, spare = buffers.loss[: z.shape[0]], buffers.spare[: z.shape[0]]
    if input_format == "logits":
        relu = torch.clamp_min(z, 0, out=out)
        if n is None:  # 0 / 1 targets: relu(z) - y z is exact
            small = torch.add(z, relu, alpha=-2, out=spare).exp_().log1p_()  # z - 2 relu(z) = -|z|, exactly
            return relu.addcmul_(y, z, value=-1).add_(small)
        below = torch.sub(relu, z, out=spare).mul_(y)  # y relu(-z)
        relu.mul_(n).add_(below)  # n relu(z) + y relu(-z): no term cancels
        return relu.add_(torch.abs(z, out=spare).neg_().exp_().log1p_())
    clipped = torch.clamp(z, eps, 1 - eps, out=out)
    log_q = torch.neg(clipped, out=spare).log1p_()  # log(1 - p) as log1p(-p): 1 - p would round first
    log_p = clipped.log_()
    if n is None:  # class indices 0 / 1 (validated, or masked to 0 where ignored)
        return torch.where(y.bool(), log_p, log_q, out=out).neg_()
    return log_p.mul_(y).add_(log_q.mul_(n)).neg_()


def _general_loss(
    z: Tensor, y: Tensor, n: Tensor | None, input_format: str, eps: float, pos: Tensor | None
) -> Tensor:
    """Elementwise loss, out of place: ``pos_weight``, log-probabilities, autograd (``n`` as in :func:`_fast_loss`)."""
    neg_log_p, neg_log_q = binary_neg_log_terms(z, input_format, eps)
    if pos is not None:
        neg_log_p = neg_log_p * pos
    y = y.to(z.dtype)
    n = 1 - y if n is None else n.to(z.dtype)  # exact for 0 / 1 targets
    return _mix(neg_log_p, neg_log_q, y, n, finite=input_format != "log_probs")


@cpu_read
def _far_elements(z: Tensor, input_format: str) -> tuple[Tensor, Tensor] | None:
    """``(rows, cols)`` of the float32 elements whose tail term leaves the normal range, or ``None`` for none.

    One ``aminmax`` of the block (CPU memory reads) says whether any element does: the usual answer is no.
    """
    if input_format == "probs" or z.dtype != torch.float32 or not z.numel():
        return None
    limit, z = tail_limit(z.dtype), z.detach()
    low, high = torch.aminmax(z)
    if float(low) >= -limit and (input_format == "log_probs" or float(high) <= limit):
        return None
    rows, cols = (z.abs() > limit if input_format == "logits" else z < -limit).nonzero(as_tuple=True)
    return rows, cols


def _exact_far(
    loss: Tensor, z: Tensor, targets: tuple[Tensor, Tensor | None], far: tuple[Tensor, Tensor], input_format: str,
    eps: float, pos: Tensor | None, out: Tensor | None,
) -> Tensor:
    """``loss`` widened to float64 (into ``out`` when given), the elements ``far`` recomputed from float64 inputs."""
    wide = loss.double() if out is None else out[: loss.shape[0]].copy_(loss)
    y, n = targets[0][far], None if targets[1] is None else targets[1][far]
    exact = _general_loss(z[far].double(), y, n, input_format, eps, None if pos is None else pos[far[1]])
    return wide.index_put(far, exact) if out is None else wide.index_put_(far, exact)


def _add_block(
    sums: Tensor, loss: Tensor, y: Tensor, keep: Tensor | None, w: Tensor | None, buffers: BceBuffers | None
) -> None:
    """Add a block's float64 column sums: loss, weight (1 or ``w`` per position, 0 where not ``keep``), target mass.

    With ``buffers`` (the in-place kernel) the loss is masked in place and widened into the float64 ``wide``.
    """
    if keep is not None:
        loss = loss.masked_fill(~keep, 0) if buffers is None else loss.masked_fill_(~keep, 0)
    wide = None if buffers is None or loss.dtype == torch.float64 else buffers.wide
    if w is None:
        sums[LOSS].add_(column_sums(loss, wide))
        sums[WEIGHT].add_(y.shape[0] if keep is None else keep.sum(0))
        sums[TARGET].add_(y.sum(0) if not y.is_floating_point() else column_sums(y, wide))
        return
    weighted = loss * w[:, None] if wide is None else torch.mul(loss, w[:, None], out=wide[: loss.shape[0]])
    dropped = w[:, None] == 0  # a zero weight removes an entry exactly, even one whose loss is inf
    weighted = weighted.masked_fill(dropped, 0) if wide is None else weighted.masked_fill_(dropped, 0)
    sums[LOSS] += weighted.sum(0)
    sums[WEIGHT] += w.sum() if keep is None else (w[:, None] * keep).sum(0)
    sums[TARGET] += (y * w[:, None]).sum(0)


def _add_block_and_clusters(
    sums: Tensor, clusters: ClusterSums, rows: slice, loss: Tensor, y: Tensor, keep: Tensor | None, w: Tensor | None,
    buffers: BceBuffers | None,
) -> None:
    """:func:`_add_block`, and the block's losses to their clusters (error bars).

    Unit weights and class-index targets leave the masked float32 losses widened in the kernel's float64
    ``wide`` buffer after :func:`_add_block`: the clusters read them there instead of widening them again.
    """
    wide = None if buffers is None or w is not None or loss.dtype == torch.float64 else buffers.wide
    if wide is None or y.is_floating_point():  # the buffer will not hold the losses (weighted, or the targets)
        clusters.add_labels(rows, loss, keep, w)
        _add_block(sums, loss, y, keep, w, buffers)
        return
    _add_block(sums, loss, y, keep, w, buffers)
    clusters.add_labels(rows, wide[: loss.shape[0]], keep, w, widened=True)


def _targets(
    y: Tensor, ignore_index: int | None, smoothing: float, dtype: torch.dtype
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Return ``(y, 1 - y, keep)``: ignored targets masked to 0, label smoothing applied, in the kernel ``dtype``.

    ``1 - y`` is ``None`` for 0 / 1 class indices. For float or smoothed targets both ``y`` and ``1 - y`` are
    formed from the given targets at their own precision (at least float64 for smoothing) and only then rounded
    to ``dtype``: a soft target 0.9964 rounded to float32 first would leave ``1 - y`` with 1e-5 of its digits.
    """
    keep = None
    if ignore_index is not None:
        keep = y != ignore_index
        y = y.masked_fill(~keep, 0)
    if smoothing:
        wide = y.to(torch.promote_types(y.dtype, torch.float64))
        y, n = wide * (1 - smoothing) + smoothing / 2, (1 - wide) * (1 - smoothing) + smoothing / 2
        if keep is not None:
            y, n = y.masked_fill_(~keep, 0), n.masked_fill_(~keep, 0)
        return y.to(dtype), n.to(dtype), keep
    if y.dtype == torch.bool:
        return y.view(torch.uint8), None, keep
    if y.is_floating_point():
        return y.to(dtype), (1 - y).to(dtype), keep
    return y, None, keep


def bce_sums(
    preds: Tensor, target: Tensor, options: BceOptions,
    sample_weight: Tensor | None = None, *, chunk_elements: int | None = None, clusters: ClusterSums | None = None,
) -> Tensor:
    """Return the ``(3, K)`` float64 sums for ``(M, K, *rest)`` ``preds`` and ``target`` of a validated batch.

    ``options`` gives the input format, ``pos_weight``, ``ignore_index`` and label smoothing.
    ``sample_weight`` is ``(M,)`` or ``(M, *rest)``: one weight per sample or per position, shared
    by the ``K`` labels there. ``chunk_elements`` overrides the row block size. ``clusters`` (error
    bars) also gets each position's weighted losses and weights, block by block.
    """
    input_format, ignore_index, smoothing = options.input_format, options.ignore_index, options.label_smoothing
    pos = None  # as given: 0.3 is not rounded to float32
    if options.pos_weight is not None:
        pos = torch.as_tensor(options.pos_weight, dtype=torch.float64, device=preds.device)
    buffered = pos is None and input_format != "log_probs"
    masked = sample_weight is not None or ignore_index is not None
    plan = _chunks.bce_plan(preds, chunk_elements, buffered=buffered, masked=masked)
    sums = torch.zeros(NUM_SUMS, preds.shape[1], dtype=torch.float64, device=preds.device)
    eps = torch.finfo(preds.dtype).eps
    buffers = plan.buffers
    for rows in plan.blocks:
        z, y, w = preds[rows], target[rows], None if sample_weight is None else sample_weight[rows]
        if z.ndim != 2:  # (m, K, *rest): one row per position
            w = None if w is None else position_weight(w, z.shape)
            z, y = labels_last(z), labels_last(y)
        z, (y, n, keep) = z.to(plan.dtype), _targets(y, ignore_index, smoothing, plan.dtype)
        w = None if w is None else w.to(torch.float64)
        if buffers is None:
            loss = _general_loss(z, y, n, input_format, eps, pos)
        else:
            loss = _fast_loss(z, y, n, input_format, eps, buffers)
        far = _far_elements(z, input_format)
        if far is not None:  # float32 elements past the tail limit: recomputed in float64 (into ``wide``)
            loss = _exact_far(loss, z, (y, n), far, input_format, eps, pos, None if buffers is None else buffers.wide)
        if clusters is None:
            _add_block(sums, loss, y, keep, w, buffers)
        else:  # error bars: each position's losses and weights, to its cluster
            _add_block_and_clusters(sums, clusters, rows, loss, y, keep, w, buffers)
    return sums


def batch_sums(
    options: BceOptions, batch: tuple[Tensor, Tensor, Tensor | None], *, clusters: ClusterSums | None = None
) -> Tensor:
    """A task's ``sums`` step: :func:`bce_sums` of a checked ``(preds, target, sample_weight)`` batch."""
    preds, target, sample_weight = batch
    return bce_sums(preds, target, options, sample_weight, clusters=clusters)
