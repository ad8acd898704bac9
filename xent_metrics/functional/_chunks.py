"""Row chunking, block layout, scratch buffers and float64 column sums shared by the cross-entropy kernels.

Every kernel walks ``preds`` in row blocks of about :data:`CHUNK_ELEMENTS` elements and writes its
elementwise work into scratch buffers of that size, allocated once per call and reused by every
block. No temporary of the size of ``preds`` is ever built, so the extra memory of an update is a
few MiB whatever the batch; a block stays in the CPU's L2/L3 cache between the passes over it.

Results do not depend on the block size: multiclass losses are float64 per row and accumulated
row by row; multilabel column sums are float64 (see :func:`column_sums`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

#: Elements per row block: a float32 block is 4 MiB, the multiclass kernel's one scratch buffer.
#: Kernels that hold more block-sized buffers use a fraction of it (the multilabel one, with two
#: float32 and one float64 buffer, a quarter): the peak extra memory of an update is about 4 MiB.
#: Smaller blocks stay in L2 but pay the per-op dispatch and thread fork/join more often (measured on
#: 2 cores: 2**18 is 30% slower than 2**20 for (65536, 1000) logits).
CHUNK_ELEMENTS = 1 << 20


#: Elements per row block off the CPU (GPUs): one block for a (65536, 1000) or a (4096, 32000) batch,
#: so the number of kernel launches of an update does not grow with the batch; its float64 temporary is
#: 1 GiB at most (the float32 input of such a block is 512 MiB; F.cross_entropy writes as much).
DEVICE_CHUNK_ELEMENTS = 1 << 27


def default_chunk(device: torch.device, chunk_elements: int | None) -> int:
    """The block size in elements: ``chunk_elements`` when given, else the device's default."""
    if chunk_elements is not None:
        return chunk_elements
    return CHUNK_ELEMENTS if device.type == "cpu" else DEVICE_CHUNK_ELEMENTS


def chunk_rows(row_numel: int, chunk_elements: int | None = None) -> int:
    """Rows of ``row_numel`` elements per block: about ``chunk_elements`` (default :data:`CHUNK_ELEMENTS`), >= 1."""
    budget = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    return max(1, budget // max(1, row_numel))


def row_slices(num_rows: int, row_numel: int, chunk_elements: int | None = None) -> Iterator[slice]:
    """Yield slices over ``num_rows`` rows of ``row_numel`` elements each, about ``chunk_elements`` per slice."""
    step = chunk_rows(row_numel, chunk_elements)
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


def labels_last(x: Tensor) -> Tensor:
    """View ``(m, K, *rest)`` as ``(m * prod(rest), K)``: one row per position (copies only when ``rest``)."""
    return x if x.ndim == 2 else x.movedim(1, -1).reshape(-1, x.shape[1])


def position_weight(sample_weight: Tensor, shape: torch.Size) -> Tensor:
    """Broadcast a ``(m,)`` or ``(m, *rest)`` weight over ``(m, C, *rest)`` and flatten to ``(m * prod(rest),)``."""
    rest = shape[2:]
    if sample_weight.ndim == 1 and rest:
        sample_weight = sample_weight.reshape(-1, *([1] * len(rest))).expand(shape[0], *rest)
    return sample_weight.reshape(-1)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the math runs in: float64 stays float64, anything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def kernel_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype of a kernel's elementwise math: the one dtype policy of every task.

    On the CPU, :func:`compute_dtype`: the values (terms, losses) that leave float32's normal range are
    found by one min/max read of the block and recomputed from float64 inputs, only those (rows of
    the multiclass kernel, elements of the binary one). Elsewhere, where that read would be a host sync
    and a data-dependent shape, float64 for every value: a fixed number of ops, exact at any margin.
    """
    return compute_dtype(dtype) if device.type == "cpu" else torch.float64


def tail_limit(dtype: torch.dtype) -> float:
    """Arguments ``x >= -tail_limit(dtype)`` keep ``exp(x)`` a normal number of ``dtype`` (a nat to spare)."""
    return -math.log(torch.finfo(dtype).tiny) - 1


def needs_grad(*tensors: Tensor | None) -> bool:
    """True when autograd records the computation: then kernels use out-of-place ops (no scratch buffers)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class Scratch:
    """Reusable ``(rows, cols)`` buffers of one dtype and device; ``take(i, m)`` views the first ``m`` rows of #i.

    Buffers are created on first use, so a path that needs one buffer never allocates two.
    """

    def __init__(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> None:
        self.shape, self.dtype, self.device = (rows, cols), dtype, device
        self.buffers: dict[int, Tensor] = {}

    def take(self, index: int, rows: int, dtype: torch.dtype | None = None) -> Tensor:
        """Return the first ``rows`` rows of buffer ``index`` (``dtype`` default: the scratch's; contents undefined)."""
        buffer = self.buffers.get(index)
        if buffer is None:
            buffer = torch.empty(self.shape, dtype=dtype or self.dtype, device=self.device)
            self.buffers[index] = buffer
        return buffer[:rows]


def column_sums(values: Tensor, wide: Tensor | None = None) -> Tensor:
    """Exact-order float64 sums over dimension 0 of a ``(m, K)`` block.

    Float32 values are widened to float64 before any addition (into ``wide``, a float64 scratch of
    the block's shape, when given), never summed in float32 first: float32 partial sums would make
    the result depend, in the 8th digit, on where blocks and batches start.
    """
    if values.dtype == torch.float64:
        return values.sum(0)
    if wide is None:
        return values.sum(0, dtype=torch.float64)
    return wide.copy_(values).sum(0)
