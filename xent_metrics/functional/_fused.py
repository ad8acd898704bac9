"""Opt-in fused kernel: ``torch.compile`` of the per-block multiclass negative log-likelihood.

Inductor turns the block's max, ``exp``-sum and gather into one loop per row that reads each logit
from cache and writes nothing but one float64 per row: close to one ``exp`` per logit, the machine's
floor. It is compiled with ``dynamic=False`` for one block shape, ``(rows, C)``, so a run compiles
once per class count and dtype; the last, smaller block of a batch runs the eager kernel instead of
triggering a recompile. Blocks are larger than the eager path's (:data:`FUSED_CHUNK_ELEMENTS`)
because the kernel needs no scratch buffer: extra memory is ``O(rows)``.

Compiling needs a C++ compiler (CPU) or Triton (CUDA) and takes tens of seconds once per process;
where it fails, a ``RuntimeWarning`` says why and the eager kernel runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from xent_metrics.functional._chunks import chunk_rows

#: Logits per fused block (16 MiB of float32 read in place; nothing of that size is allocated).
FUSED_CHUNK_ELEMENTS = 1 << 22

_STATE: dict[str, object] = {}


def _nll_rows(z: Tensor, t: Tensor) -> Tensor:
    """Float64 ``logsumexp(z_i) - z[i, t_i]`` per row of a ``(m, C)`` block."""
    top = z.amax(1, keepdim=True)
    total = (z - top).exp().sum(1)
    lse = total.double().log() + top.squeeze(1).double()
    return lse - z.gather(1, t[:, None]).squeeze(1).double()


def fused_step(row_numel: int, chunk_elements: int | None) -> int:
    """Rows per fused block."""
    return chunk_rows(row_numel, FUSED_CHUNK_ELEMENTS if chunk_elements is None else chunk_elements)


def fused_nll_kernel() -> Callable[[Tensor, Tensor], Tensor] | None:
    """The compiled ``_nll_rows`` (compiled lazily, per shape, on first call), or ``None`` where compiling fails."""
    if "kernel" not in _STATE:
        try:
            _STATE["kernel"] = _checked(torch.compile(_nll_rows, dynamic=False, fullgraph=True))
        except Exception as error:  # no compiler, unsupported platform: run eagerly, once warned
            _disable(error)
    return _STATE["kernel"]  # type: ignore[return-value]


def _checked(kernel: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap ``kernel`` so that a failure of the (lazy) first compilation falls back to the eager kernel."""

    def run(z: Tensor, t: Tensor) -> Tensor:
        if _STATE.get("kernel") is None:
            return _nll_rows(z, t)
        try:
            with warnings.catch_warnings():  # torch's own deprecation notices while it compiles are not ours
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
                return kernel(z, t)
        except Exception as error:  # the compile happens on first call
            _disable(error)
            return _nll_rows(z, t)

    return run


def _disable(error: Exception) -> None:
    _STATE["kernel"] = None
    warnings.warn(
        f"fused=True: torch.compile of the cross-entropy kernel failed ({type(error).__name__}: {error}); "
        "running the eager kernel instead. Install a C++ compiler (CPU) or Triton (CUDA) to use the fused path.",
        RuntimeWarning,
        stacklevel=3,
    )
