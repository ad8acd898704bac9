"""The block plan of the cross-entropy kernels: one owner of block sizes, per device and dtype.

A kernel asks its plan once, at the start of a call (:func:`softmax_plan`, :func:`bce_plan`,
:func:`head_plan`), and gets everything its blocks need: the row slices, the dtype of the
elementwise math, whether autograd records, and its named scratch buffers, allocated once per call
and reused by every block. No temporary of the size of ``preds`` is ever built, so the extra memory
of an update is a few MiB whatever the batch; a block stays in the CPU's L2/L3 cache between the
passes over it. The hidden-state head's plan has a second dimension: the vocabulary columns each
projection writes (one GEMM per column block).

Results of the multiclass and multilabel kernels do not depend on the block size: multiclass losses
are float64 per row and accumulated row by row; multilabel column sums are float64. The hidden-state
head's do, at the level of rounding: the matmul may round a logit differently for another block shape,
and a token's float64 sums over the vocabulary blocks are added in the plan's order (a fixed plan gives
the same bits on every run). The constants are read at call time.

The module also declares the kernels' CPU-only host reads (:func:`cpu_read`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CodeType
from typing import Any, TypeVar

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

#: Logits per block of the compiled multiclass kernel (32 MiB of float32, read in place: nothing of that
#: size is allocated). Measured on 2 cores: 2**23 is 4.2x F.cross_entropy at (65536, 1000) and
#: (4096, 32000), where 2**22 gives 4.0x and 3.6x (more calls) and 2**24 leaves a quarter of (65536, 1000)
#: to the eager tail.
FUSED_CHUNK_ELEMENTS = 1 << 23

#: Bytes of a hidden-state block's logits on the CPU: 8 MiB, 512 tokens by :data:`HEAD_VOCAB_ROWS` vocabulary
#: rows in float32. Each block is one GEMM of ``(512, d) @ (d, 4096)``: measured on 2 cores, such blocks cost
#: 1.06x the whole ``hidden @ W.T`` where blocks of 64 tokens by the whole 32000-row vocabulary (the same
#: 8 MiB) cost 1.7x, and at V = 128k whole-vocabulary blocks shrink to 16 tokens.
HEAD_BLOCK_BYTES = 8 << 20

#: Vocabulary rows (columns of the logits) per hidden-state block on the CPU.
HEAD_VOCAB_ROWS = 4096

#: Vocabulary rows per hidden-state block off the CPU: a GEMM wide enough to fill a GPU; the tokens per
#: block fill :data:`DEVICE_CHUNK_ELEMENTS` logits, so the number of blocks does not grow with a batch up to that.
HEAD_DEVICE_VOCAB_ROWS = 1 << 15

#: Row sums (or values) per block of the value checks of ``preds`` (``_validation``): the row-sum check's
#: temporary stays within 8 MiB (float64) whatever the number of classes, one pass for up to 2**20 rows.
ROW_CHECK_ELEMENTS = 1 << 20

#: A plain multiclass batch (class indices, unit weights) of at most a block / ``SMALL_FRACTION``
#: elements takes the per-step path: its temporaries stay within the block's memory bound.
SMALL_FRACTION = 4

#: The code objects of the functions declared with :func:`cpu_read`.
CPU_READS: set[CodeType] = set()

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def cpu_read(fn: _Fn) -> _Fn:
    """Declare ``fn`` a read of tensor values back to the host that the kernels make on CPU tensors only.

    On the CPU such a read is a memory access, not a device sync; other devices take a path without
    it (a ``where``, or float64 for every value). ``fn`` is returned as it is (no wrapper, no extra
    call); the test of the update path's host reads knows the declared reads by :data:`CPU_READS`.
    """
    CPU_READS.add(fn.__code__)
    return fn


#: Test hook: ``True`` sends CPU tensors down the path of other devices (no host reads, float64 for every value,
#: the device block sizes), so that a machine without a GPU tests that path. Tests set it with
#: ``monkeypatch.setattr(_chunks, "DEVICE_PATH_ON_CPU", True)``; library code never does. The kernels read it
#: where they choose a path (``x.is_cpu and not _chunks.DEVICE_PATH_ON_CPU``, or a plan's ``host_reads``).
DEVICE_PATH_ON_CPU = False


def on_cpu(where: Tensor | torch.device) -> bool:
    """Whether kernels on ``where`` (a tensor or a device) take the CPU path, with host reads.

    The CPU unless :data:`DEVICE_PATH_ON_CPU`; a tensor is asked ``is_cpu`` (no device object built).
    """
    return (where.is_cpu if isinstance(where, Tensor) else where.type == "cpu") and not DEVICE_PATH_ON_CPU


def default_chunk(device: torch.device, chunk_elements: int | None) -> int:
    """The block size in elements: ``chunk_elements`` when given, else the device's default."""
    if chunk_elements is not None:
        return chunk_elements
    return CHUNK_ELEMENTS if on_cpu(device) else DEVICE_CHUNK_ELEMENTS


def per_step_elements(preds: Tensor, chunk_elements: int | None = None) -> int:
    """The elements up to which a plain ``(N, C)`` batch takes the per-step path: a block / ``SMALL_FRACTION``."""
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS if on_cpu(preds) else DEVICE_CHUNK_ELEMENTS
    return chunk_elements // SMALL_FRACTION


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
    return compute_dtype(dtype) if on_cpu(device) else torch.float64


def needs_grad(*tensors: Tensor | None) -> bool:
    """True when autograd records the computation: then kernels use out-of-place ops (no scratch buffers)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@dataclass(frozen=True)
class SoftmaxPlan:
    """The blocks of a multiclass kernel call over ``(N, C, ...)`` scores.

    ``fused`` are the full blocks of the compiled kernel, ``eager`` the row blocks after them;
    ``small`` the size in elements up to which a plain ``(N, C)`` batch takes the per-step path;
    ``work`` the eager blocks' one ``(rows, C)`` scratch buffer in ``dtype`` (``None`` when no block
    needs it, or under autograd: ``grad``).
    """

    fused: tuple[slice, ...]
    eager: tuple[slice, ...]
    small: int
    dtype: torch.dtype
    grad: bool
    work: Tensor | None


def softmax_plan(
    preds: Tensor, chunk_elements: int | None, *, soft: bool, gather: bool, fused: bool, plain: bool, work: bool
) -> SoftmaxPlan:
    """The block plan of :func:`~xent_metrics.functional._softmax_ce.softmax_ce_sums` for ``preds``.

    ``soft``: probability targets (float64 block temporaries: a quarter block). ``gather``: a per-row
    gather of the target's score, without smoothing (row-sized temporaries: ``C / 8`` blocks).
    ``fused``: a compiled kernel runs the full blocks of :data:`FUSED_CHUNK_ELEMENTS` (or ``chunk_elements``)
    first, the ragged tail runs eagerly with the default block. ``plain``: the batch may take the
    per-step path (at most ``small`` elements): no blocks, no buffer. ``work``: the eager blocks need
    the scratch buffer.
    """
    grad, dtype = needs_grad(preds), compute_dtype(preds.dtype)
    small = per_step_elements(preds, chunk_elements)
    if plain and preds.numel() <= small:  # the per-step path: no blocks, no buffer
        return SoftmaxPlan((), (), small, dtype, grad, None)
    rows, classes, row_numel = preds.shape[0], preds.shape[1], math.prod(preds.shape[1:])
    done, fused_blocks = 0, tuple[slice, ...]()  # no fused blocks unless a compiled kernel runs
    if fused and not grad:
        step = chunk_rows(row_numel, FUSED_CHUNK_ELEMENTS if chunk_elements is None else chunk_elements)
        done = rows - rows % step
        fused_blocks = tuple(slice(start, start + step) for start in range(0, done, step))
        chunk_elements = None if done else chunk_elements
    chunk = default_chunk(preds.device, chunk_elements)
    if soft:
        chunk = max(1, chunk // 4)
    elif gather:
        chunk = max(1, chunk * classes // 8)
    eager = tuple(slice(s.start + done, s.stop + done) for s in row_slices(rows - done, row_numel, chunk))
    height = max(2, min(chunk_rows(row_numel, chunk), rows - done) * row_numel // max(1, classes))
    buffer = torch.empty(height, classes, dtype=dtype, device=preds.device) if work and eager and not grad else None
    return SoftmaxPlan(fused_blocks, eager, small, dtype, grad, buffer)


@dataclass(frozen=True)
class BceBuffers:
    """The in-place binary kernel's named ``(rows, K)`` scratch buffers.

    ``loss`` and ``spare`` in the kernel's dtype; ``wide`` float64, ``None`` where that dtype is float64.
    """

    loss: Tensor
    spare: Tensor
    wide: Tensor | None


@dataclass(frozen=True)
class BcePlan:
    """The blocks of a binary / multilabel kernel call over ``(M, K, ...)`` scores.

    ``blocks`` are the row slices, ``dtype`` the elementwise dtype (:func:`kernel_dtype`), ``buffers``
    those of the in-place kernel (``None``: the general, out-of-place kernel runs).
    """

    blocks: tuple[slice, ...]
    dtype: torch.dtype
    buffers: BceBuffers | None


def bce_plan(preds: Tensor, chunk_elements: int | None, *, buffered: bool, masked: bool) -> BcePlan:
    """The block plan of :func:`~xent_metrics.functional._bce.bce_sums` for ``preds``.

    ``buffered``: the kernel can run in place (no ``pos_weight``, no log-probabilities); it does unless
    autograd records. Its two float32 and one float64 buffer (two float64 off the CPU) take a quarter
    block; weights or ignored targets (``masked``) and the general kernel hold more: an eighth.
    """
    dtype = kernel_dtype(preds.dtype, preds.device)
    fast = buffered and not needs_grad(preds)
    chunk = max(1, default_chunk(preds.device, chunk_elements) // (4 if fast and not masked else 8))
    row_numel, labels = preds[:1].numel(), preds.shape[1]
    blocks = tuple(row_slices(preds.shape[0], row_numel, chunk))
    if not fast:
        return BcePlan(blocks, dtype, None)
    shape = (min(chunk_rows(row_numel, chunk), preds.shape[0]) * row_numel // max(1, labels), labels)
    loss, spare = (torch.empty(shape, dtype=dtype, device=preds.device) for _ in range(2))
    wide = None if dtype == torch.float64 else torch.empty(shape, dtype=torch.float64, device=preds.device)
    return BcePlan(blocks, dtype, BceBuffers(loss, spare, wide))


@dataclass(frozen=True)
class HeadPlan:
    """The blocks of a hidden-state head's kernel call: tokens by vocabulary rows.

    ``step`` tokens per block (the kernel slices any number of tokens by it) by the
    vocabulary rows ``cols`` of the head, one GEMM per (token block, vocabulary block) pair. Buffers,
    allocated once per call and reused by every pair: ``logits`` a block's ``(step, width)`` logits in
    ``dtype``; ``head`` one block of a float16 / bfloat16 head widened to ``dtype`` (``None`` for a head in
    ``dtype``); ``wide`` the float64 copy of a block that the float64 form works in (off the CPU; the CPU
    allocates it only for rows that need it). Under autograd (``grad``) whole-vocabulary blocks and no
    buffers: the graph keeps every block's logits anyway.
    """

    step: int
    cols: tuple[slice, ...]
    dtype: torch.dtype
    grad: bool
    logits: Tensor | None
    head: Tensor | None
    wide: Tensor | None
    #: Whether the kernel takes the CPU path, with host reads (:func:`on_cpu`).
    host_reads: bool


def head_block_cols(classes: int, device: torch.device, grad: bool = False) -> int:
    """Vocabulary rows per block: :data:`HEAD_VOCAB_ROWS` on the CPU, :data:`HEAD_DEVICE_VOCAB_ROWS` elsewhere.

    Under autograd (``grad``) the whole vocabulary: each block goes through the multiclass kernel.
    """
    if grad:
        return classes
    return min(classes, HEAD_VOCAB_ROWS if on_cpu(device) else HEAD_DEVICE_VOCAB_ROWS)


def head_block_rows(
    width: int, itemsize: int, block_size: int | None = None, device: torch.device | None = None
) -> int:
    """Tokens per block of ``width`` vocabulary rows: ``block_size`` when given, else the device's budget.

    :data:`HEAD_BLOCK_BYTES` of logits on the CPU (512 tokens of 4096 float32 columns),
    :data:`DEVICE_CHUNK_ELEMENTS` logits elsewhere.
    """
    if block_size is not None:
        return block_size
    if device is None or on_cpu(device):
        return max(1, HEAD_BLOCK_BYTES // (width * itemsize))
    return max(1, DEVICE_CHUNK_ELEMENTS // width)


def head_plan(
    hidden: Tensor, linear_weight: Tensor, linear_bias: Tensor | None, count: int, block_size: int | None
) -> HeadPlan:
    """The block plan of :func:`~xent_metrics.functional._head_ce.linear_sums` over ``count >= 1`` projected tokens.

    Blocks of :func:`head_block_rows` tokens (or ``block_size``) by :func:`head_block_cols` vocabulary rows.
    """
    classes, dtype, device = linear_weight.shape[0], compute_dtype(hidden.dtype), hidden.device
    grad = needs_grad(hidden, linear_weight, linear_bias)
    width = head_block_cols(classes, device, grad)
    step = min(count, head_block_rows(width, dtype.itemsize, block_size, device))
    cols = tuple(slice(start, min(start + width, classes)) for start in range(0, classes, width))
    if grad:
        return HeadPlan(step, cols, dtype, grad, None, None, None, on_cpu(device))
    logits = hidden.new_empty(step, width, dtype=dtype)
    head = None if linear_weight.dtype == dtype else hidden.new_empty(width, linear_weight.shape[1], dtype=dtype)
    wide = None if on_cpu(device) else hidden.new_empty(step, width, dtype=torch.float64)
    return HeadPlan(step, cols, dtype, grad, logits, head, wide, on_cpu(device))
