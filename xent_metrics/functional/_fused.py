"""Opt-in fused kernel: ``torch.compile`` of the per-block multiclass negative log-likelihood.

Inductor turns the block's ``exp``-sum and gather into one loop per row that reads each logit once
and writes nothing but one float64 per row (on the CPU it also skips the max shift, as the eager
kernel does): one ``exp`` per logit, the machine's floor. It is compiled with ``dynamic=False`` for
one block shape, ``(rows, C)``, so a run compiles once per class count and dtype; the last, smaller
block of a batch runs the eager kernel instead of triggering a recompile. Blocks are larger than
the eager path's (:data:`FUSED_CHUNK_ELEMENTS`) because the kernel needs no scratch buffer: its
extra memory is ``O(rows)``. Its digits differ from the eager kernel's in the last float32 bit of
a row (another ``exp`` implementation and summation order), so sums agree across block and batch
splits to about 1e-9 relative, not to the last float64 bit as the eager path does.

Compiling needs a C++ compiler (CPU) or Triton (CUDA) and takes seconds to tens of seconds once per
process and shape (inductor caches its code on disk); where it fails, a ``RuntimeWarning`` says why
and the eager kernel runs.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from xent_metrics.functional._chunks import EXP_SUM_RANGE, chunk_rows

#: Logits per fused block (32 MiB of float32, read in place: nothing of that size is allocated).
#: Measured on 2 cores: 2**23 is 4.2x F.cross_entropy at (65536, 1000) and (4096, 32000), where
#: 2**22 gives 4.0x and 3.6x (more calls) and 2**24 leaves a quarter of (65536, 1000) to the tail.
FUSED_CHUNK_ELEMENTS = 1 << 23

_STATE: dict[str, object] = {}


def _nll_shifted(z: Tensor, t: Tensor) -> Tensor:
    """Float64 ``logsumexp(z_i) - z[i, t_i]`` per row of a ``(m, C)`` block, max-shifted."""
    top = z.amax(1, keepdim=True)
    total = (z - top).exp().sum(1)
    lse = total.double().log() + top.squeeze(1).double()
    return lse - z.gather(1, t[:, None]).squeeze(1).double()


def _nll_unshifted(z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Float64 ``log(sum_j exp(z_ij)) - z[i, t_i]`` per row, and whether each row's sum kept its digits."""
    total = z.exp().sum(1)
    low, high = EXP_SUM_RANGE[z.dtype]
    ok = (total >= low) & (total <= high)
    return total.double().log() - z.gather(1, t[:, None]).squeeze(1).double(), ok


def fused_step(row_numel: int, chunk_elements: int | None) -> int:
    """Rows per fused block."""
    return chunk_rows(row_numel, FUSED_CHUNK_ELEMENTS if chunk_elements is None else chunk_elements)


def fused_nll_kernel() -> Callable[[Tensor, Tensor], Tensor] | None:
    """A function ``(z, t) -> float64 nll per row`` running the compiled kernels, or ``None`` where compiling fails.

    On the CPU the compiled kernel skips the max shift (one ``exp`` and one sum per logit, as the
    eager kernel) and reports the rows whose sum overflowed or underflowed; those rows are recomputed
    eagerly with the shift (a host read of one boolean per block). Elsewhere the shifted kernel runs.
    """
    if "kernel" not in _STATE:
        try:
            compile_ = functools.partial(torch.compile, dynamic=False, fullgraph=True)
            _STATE["unshifted"], _STATE["shifted"] = compile_(_nll_unshifted), compile_(_nll_shifted)
            _STATE["kernel"] = _run
        except Exception as error:  # no compiler, unsupported platform: run eagerly, once warned
            _disable(error)
    return _STATE["kernel"]  # type: ignore[return-value]


def _run(z: Tensor, t: Tensor) -> Tensor:
    """Run the compiled kernel for ``z``'s device; a failure of the (lazy) compilation falls back to eager."""
    try:
        with warnings.catch_warnings():  # torch's own deprecation notices while it compiles are not ours
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
            if z.device.type != "cpu":
                return _STATE["shifted"](z, t)  # type: ignore[operator]
            nll, ok = _STATE["unshifted"](z, t)  # type: ignore[operator]
    except Exception as error:  # the compile happens on the first call
        _disable(error)
        return _nll_shifted(z, t)
    return nll if bool(ok.all()) else torch.where(ok, nll, _nll_shifted(z, t))


def _disable(error: Exception) -> None:
    _STATE["kernel"] = None
    warnings.warn(
        f"fused=True: torch.compile of the cross-entropy kernel failed ({type(error).__name__}: {error}); "
        "running the eager kernel instead. Install a C++ compiler (CPU) or Triton (CUDA) to use the fused path.",
        RuntimeWarning,
        stacklevel=3,
    )
