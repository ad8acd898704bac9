"""The kernel of a linear head's cross-entropy, ``hidden @ linear_weight.T (+ linear_bias)``, without the logits.

The tokens are walked in the blocks of one plan (:func:`~xent_metrics.functional._chunks.head_plan`: at
most :data:`~xent_metrics.functional._chunks.HEAD_BLOCK_BYTES` of logits on the CPU, whatever the number
of tokens): each block is projected into one reused buffer, reduced to ``(3, V)`` float64 sums by
:func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums` (the kernel every multiclass path uses), added,
and overwritten by the next. On the CPU, ignored tokens are dropped before the projection; elsewhere
(where finding them is a host sync) the kernel masks them.

The logits are float32 (float64 for float64 inputs), as the kernels' inputs always are: float16 and
bfloat16 operands go through a float32 GEMM, the block's rows widened at once and the head's rows a
column block of the plan at a time (4 MiB of float32 on the CPU; a float32 copy of a whole 128k-row
head would be 131 MiB). Half-precision logits would cost the loss 1e-5 (float16) to 1e-4 (bfloat16)
of its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import HeadPlan, cpu_read
from xent_metrics.functional._softmax_ce import ClassOptions, softmax_ce_sums
from xent_metrics.functional._sums import NUM_SUMS

if TYPE_CHECKING:
    from xent_metrics.functional._cluster_sums import ClusterSums


class HeadOptions(ClassOptions, Protocol):
    """What the head's kernel reads of a task's options."""

    @property
    def validate_args(self) -> bool: ...

    @property
    def block_size(self) -> int | None: ...


@dataclass(frozen=True)
class _BlockOptions:
    """The loss kernel's options for a projected block: logits, never fused, ``ignore_index`` as masked there."""

    weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float
    input_format: str = "logits"
    fused: bool = False


def _project(rows: Tensor, weight: Tensor, bias: Tensor | None, plan: HeadPlan) -> Tensor:
    """``rows @ weight.T (+ bias)`` in the plan's dtype, into its ``logits`` buffer (no autograd).

    One GEMM per column block of the plan: a half-precision head is widened a block at a time (into
    the plan's ``head`` buffer), each block's logits written into its columns of the buffer.
    """
    if plan.logits is None:  # autograd: linear_sums widened the head once (the graph keeps every block's logits)
        return F.linear(rows.to(plan.dtype), weight, bias)
    out, rows = plan.logits[: rows.shape[0]], rows.to(plan.dtype)
    for cols in plan.cols:
        part = weight[cols] if plan.head is None else plan.head[: cols.stop - cols.start].copy_(weight[cols])
        part, block = part.t(), out[:, cols]
        if bias is None:
            torch.mm(rows, part, out=block)
        else:
            torch.addmm(bias[cols].to(plan.dtype), rows, part, out=block)
    return out


def _take(values: Tensor, rows: slice | Tensor) -> Tensor:
    """The rows ``rows`` (a slice: a view; indices: a copy) of ``values``."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


def _token_rows(hidden: Tensor, rows: slice | Tensor) -> Tensor:
    """The ``(m, d)`` features of tokens ``rows`` (flat positions) of ``(..., d)`` hidden states.

    A layout that flattens to ``(N, d)`` without a copy is sliced; any other (e.g. a GRU's
    ``batch_first`` output, a strided view) is gathered block by block: no copy of the whole input.
    """
    if hidden.ndim == 2:
        return _take(hidden, rows)
    try:
        return _take(hidden.view(-1, hidden.shape[-1]), rows)
    except RuntimeError:  # not viewable as (N, d)
        if isinstance(rows, slice):
            rows = torch.arange(rows.start, min(rows.stop, math.prod(hidden.shape[:-1])), device=hidden.device)
        return hidden[torch.unravel_index(rows, hidden.shape[:-1])]


@cpu_read
def _kept_rows(target: Tensor, ignore_index: int | None, compact: bool) -> Tensor | None:
    """Indices of the tokens to project, or ``None`` for all of them.

    A host read: ``compact`` on the CPU, or where the batch's validation has read values already.
    """
    if ignore_index is None or not compact:
        return None
    keep = target != ignore_index
    return None if bool(keep.all()) else keep.nonzero().squeeze(1)


def linear_sums(
    hidden: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    sample_weight: Tensor | None,
    options: HeadOptions,
    block_size: int | None = None,
    per_class: bool = True,
    clusters: ClusterSums | None = None,
) -> Tensor:
    """Return the ``(3, V)`` float64 sums of validated ``(..., d)`` hidden states and ``(N,)`` targets, block by block.

    The step :func:`linear_cross_entropy` and the metrics' hidden-state ``update`` share.
    ``per_class=False`` returns their ``(3, 1)`` totals. ``clusters`` (error bars) also gets each
    token's weighted loss and weight (:func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums`).
    """
    classes, device = linear_weight.shape[0], hidden.device
    compact = device.type == "cpu" or options.validate_args  # finding the kept rows reads the host
    kept = _kept_rows(target, options.ignore_index, compact)
    count = target.shape[0] if kept is None else kept.shape[0]
    sums = torch.zeros(NUM_SUMS, classes, dtype=torch.float64, device=device)
    if count:
        ignore = None if kept is not None or compact else options.ignore_index  # else the kernel masks them
        block_options = _BlockOptions(options.weight, ignore, options.label_smoothing)
        plain = sample_weight is None and options.weight is None and ignore is None and not options.label_smoothing
        work = device.type == "cpu" or bool(options.label_smoothing)  # the exp terms; the smoothing term
        plan = _chunks.head_plan(hidden, linear_weight, linear_bias, count, block_size, plain=plain, work=work)
        if plan.grad:  # autograd keeps every block's logits (more than the head): one widening, shared by the blocks
            linear_weight = linear_weight.to(plan.dtype)
            linear_bias = None if linear_bias is None else linear_bias.to(plan.dtype)
        for tokens, rows in plan.blocks:
            index = tokens if kept is None else kept[tokens]
            logits = _project(_token_rows(hidden, index), linear_weight, linear_bias, plan)
            weights = None if sample_weight is None else _take(sample_weight, index)
            sink = None if clusters is None else clusters.take(index)
            sums += softmax_ce_sums(
                logits, _take(target, index), block_options, weights, plan=plan.kernel, blocks=rows, clusters=sink
            )
    return sums if per_class else sums.sum(1, keepdim=True)


def batch_sums(
    options: HeadOptions,
    batch: tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None],
    *,
    per_class: bool = True,
    clusters: ClusterSums | None = None,
) -> Tensor:
    """A task's ``sums`` step: :func:`linear_sums` of a checked ``(hidden, weight, target, bias, sample_weight)``."""
    hidden, linear_weight, target, linear_bias, sample_weight = batch
    return linear_sums(
        hidden, linear_weight, target, linear_bias, sample_weight, options, options.block_size, per_class, clusters
    )
