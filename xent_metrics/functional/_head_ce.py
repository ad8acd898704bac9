"""The kernel of a linear head's cross-entropy, ``hidden @ linear_weight.T (+ linear_bias)``, without the logits.

The tokens are walked in blocks of :func:`block_rows` rows (at most :data:`BLOCK_BYTES` of logits,
whatever the number of tokens): each block is projected into one reused buffer, reduced to ``(3, V)``
float64 sums by :func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums` (the kernel every
multiclass path uses), added, and overwritten by the next. On the CPU, ignored tokens are dropped
before the projection; elsewhere (where finding them is a host sync) the kernel masks them.

The logits are float32 (float64 for float64 inputs), as the kernels' inputs always are: float16 and
bfloat16 operands go through a float32 GEMM, the block's rows widened at once and the head's rows a
block of :func:`~xent_metrics.functional._chunks.default_chunk` elements at a time (4 MiB of float32 on
the CPU; a float32 copy of a whole 128k-row head would be 131 MiB).
Half-precision logits would cost the loss 1e-5 (float16) to 1e-4 (bfloat16) of its value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import compute_dtype, needs_grad
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional._sums import new_sums

#: Bytes of block logits: 8 MiB (64 tokens of a 32000-token vocabulary in float32). At N = 8192, d = 512,
#: V = 32000 the peak extra memory stays under torch's chunked ``F.linear_cross_entropy`` (the ``linear_ce``
#: case of ``benchmarks/``); 16 MiB blocks are about 15% faster on 2 threads (a matmul of 64 rows is less
#: efficient than one of 128) but peak above torch's.
BLOCK_BYTES = 8 << 20
#: Logits per block of the loss kernel inside a projected block (a 4 MiB float32 scratch buffer): half a
#: projected block, so the kernel runs two sub-blocks per block (fewer parallel regions than smaller ones).
KERNEL_CHUNK_ELEMENTS = 1 << 20


def block_rows(num_classes: int, itemsize: int, block_size: int | None = None) -> int:
    """Tokens per block: ``block_size`` when given, else as many as fit :data:`BLOCK_BYTES` of logits (>= 1).

    Rounded down to whole sub-blocks of the kernel (:data:`KERNEL_CHUNK_ELEMENTS`), so that no block
    ends in a sliver of a row or two that costs the kernel a full pass of small operations.
    """
    if block_size is not None:
        return block_size
    rows, kernel = max(1, BLOCK_BYTES // (num_classes * itemsize)), max(1, KERNEL_CHUNK_ELEMENTS // num_classes)
    return rows // kernel * kernel if rows >= kernel else rows


def _project(rows: Tensor, weight: Tensor, bias: Tensor | None, buffer: Tensor | None) -> Tensor:
    """``rows @ weight.T (+ bias)`` in ``compute_dtype``, into ``buffer`` when given (no autograd).

    Half-precision operands are widened: the rows at once, the head a block of the device's
    :func:`~xent_metrics.functional._chunks.default_chunk` elements at a time, each block's logits
    written into its columns of ``buffer``.
    """
    dtype = compute_dtype(rows.dtype)
    if buffer is None:  # autograd: linear_sums widened the head once (the graph keeps every block's logits)
        return F.linear(rows.to(dtype), weight, bias)
    out, rows = buffer[: rows.shape[0]], rows.to(dtype)
    step = weight.shape[0]
    if weight.dtype != dtype:  # a float32 block of the head per GEMM
        step = _chunks.chunk_rows(weight.shape[1], _chunks.default_chunk(weight.device, None))
    for start in range(0, weight.shape[0], step):
        part, cols = weight[start : start + step].to(dtype).t(), out[:, start : start + step]
        if bias is None:
            torch.mm(rows, part, out=cols)
        else:
            torch.addmm(bias[start : start + step].to(dtype), rows, part, out=cols)
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


def _kept_rows(target: Tensor, ignore_index: int | None, compact: bool) -> Tensor | None:
    """Indices of the tokens to project (a host read), or ``None`` for all of them."""
    if ignore_index is None or not compact:
        return None
    keep = target != ignore_index
    return None if bool(keep.all()) else keep.nonzero().squeeze(1)


@dataclasses.dataclass(frozen=True)
class _BlockOptions:
    """What the softmax kernel reads for a block of projected logits (no fused kernel there)."""

    weight: Tensor | None
    ignore_index: int | None
    label_smoothing: float
    input_format: str = "logits"
    fused: bool = False


def linear_sums(
    hidden: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    sample_weight: Tensor | None,
    options: Any,
    block_size: int | None = None,
) -> Tensor:
    """Return the ``(3, V)`` float64 sums of validated ``(..., d)`` hidden states and ``(N,)`` targets, block by block.

    The step :func:`linear_cross_entropy` and the metrics' hidden-state ``update`` share.
    """
    classes = linear_weight.shape[0]
    sums = new_sums(classes, hidden.device)
    compact = hidden.device.type == "cpu" or options.validate_args  # finding the kept rows reads the host
    kept = _kept_rows(target, options.ignore_index, compact)
    count = target.shape[0] if kept is None else kept.shape[0]
    if not count:
        return sums
    cpu, dtype = hidden.device.type == "cpu", compute_dtype(hidden.dtype)
    if cpu or block_size is not None:
        step = min(count, block_rows(classes, dtype.itemsize, block_size))
    else:  # off the CPU: blocks of the device's budget, so the number of launches does not grow with the tokens
        step = min(count, max(1, _chunks.default_chunk(hidden.device, None) // classes))
    grad = needs_grad(hidden, linear_weight, linear_bias)
    buffer = None if grad else hidden.new_empty(step, classes, dtype=dtype)
    if grad:  # autograd keeps every block's logits (more than the head): one widening, shared by the blocks
        linear_weight, linear_bias = linear_weight.to(dtype), None if linear_bias is None else linear_bias.to(dtype)
    ignore = None if kept is not None or compact else options.ignore_index  # else the kernel masks them
    options = _BlockOptions(options.weight, ignore, options.label_smoothing)
    for start in range(0, count, step):
        rows = slice(start, start + step) if kept is None else kept[start : start + step]
        logits = _project(_token_rows(hidden, rows), linear_weight, linear_bias, buffer)
        weights = None if sample_weight is None else _take(sample_weight, rows)
        chunk = KERNEL_CHUNK_ELEMENTS if cpu else None
        sums += softmax_ce_sums(logits, _take(target, rows), options, weights, chunk_elements=chunk)
    return sums


