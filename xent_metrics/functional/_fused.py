"""Opt-in fused kernel: ``torch.compile`` of the per-block multiclass negative log-likelihood.

Inductor turns the block's ``exp``, the true class's term and the sum of the others into one loop
per row that reads each logit once and writes two numbers per row; the loss is then ``log1p`` of
their ratio, as in the eager kernel (:mod:`xent_metrics.functional._nll`), with the same recompute
of out-of-range rows: one ``exp`` per logit, the machine's floor. It is compiled with ``dynamic=False`` for
one block shape, ``(rows, C)``, so a run compiles once per class count and dtype; the last, smaller
block of a batch runs the eager kernel instead of triggering a recompile. Blocks are larger than
the eager path's (:data:`~xent_metrics.functional._chunks.FUSED_CHUNK_ELEMENTS`, in the block plan)
because the kernel needs no scratch buffer: its extra memory is ``O(rows)``. Its digits differ from
the eager kernel's in the last float32 bit of a row (another ``exp`` implementation and summation
order), so sums agree across block and batch splits to about 1e-9 relative, not to the last float64
bit as the eager path does.

Compiling needs a C++ compiler (CPU) or Triton (CUDA) and takes seconds to tens of seconds once per
process and shape (inductor caches its code on disk); where it fails, one ``RuntimeWarning`` per
process says why and the eager kernel runs: compiling is tried once per process, not once per block.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from xent_metrics.functional._nll import nll_from_logits, nll_from_terms

_STATE: dict[str, object] = {}


def _ratio_terms(z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of a ``(m, C)`` block: ``exp(z_t)`` and ``sum_{j != t} exp(z_j)``, in the input dtype (compiled)."""
    true_class = torch.arange(z.shape[1], device=z.device)[None, :] == t[:, None]
    rest = torch.where(true_class, 0, z.exp()).sum(1)  # one loop per row: each logit read once, nothing written
    return z.gather(1, t[:, None]).squeeze(1).exp(), rest


def fused_nll_kernel() -> Callable[[Tensor, Tensor], Tensor] | None:
    """A function ``(z, t) -> float64 nll per row`` running the compiled kernels, or ``None`` where compiling failed.

    The compiled kernel returns each row's ``exp(z_t)`` and the sum of the other exponentials; the
    loss and the recompute of out-of-range rows are the eager kernel's
    (:func:`~xent_metrics.functional._nll.nll_from_terms`). Compiling is tried once per process: after
    a failure this returns ``None`` and every later block and call runs the eager kernel, unwarned.
    """
    if "kernel" not in _STATE:
        try:
            _STATE["terms"] = torch.compile(_ratio_terms, dynamic=False, fullgraph=True)
            _STATE["kernel"] = _run
        except Exception as error:  # an unsupported platform; a missing compiler only shows on the first call
            _disable(error)
    return _STATE["kernel"]  # type: ignore[return-value]


def _run(z: Tensor, t: Tensor) -> Tensor:
    """Run the compiled kernel; the first failure of its (lazy) compilation disables it, and the eager kernel runs.

    A call's blocks share this function: once disabled, the blocks left run eagerly without a new try.
    """
    terms = _STATE["terms"] if _STATE["kernel"] is not None else None
    if terms is None:
        return nll_from_logits(z, t)
    try:
        with warnings.catch_warnings():  # torch's own deprecation notices while it compiles are not ours
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
            own, rest = terms(z, t)  # type: ignore[operator]
    except Exception as error:  # the compile happens on the first call
        _disable(error)
        return nll_from_logits(z, t)
    return nll_from_terms(z, t, own, rest)


def _disable(error: Exception) -> None:
    """Run eagerly from now on, in this process, after one ``RuntimeWarning`` naming the error's first line."""
    _STATE["kernel"], _STATE["terms"] = None, None
    reason = (str(error).strip().splitlines() or [""])[0]
    warnings.warn(
        f"fused=True: torch.compile of the cross-entropy kernel failed ({type(error).__name__}: {reason}); "
        "running the eager kernel instead for the rest of this process (compiling is not tried again). "
        "Install a C++ compiler (CPU) or Triton (CUDA) to use the fused path.",
        RuntimeWarning,
        stacklevel=3,
    )
