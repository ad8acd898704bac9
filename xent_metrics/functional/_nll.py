"""Per-row ``-log softmax(z)[i, t_i]`` of a ``(m, C)`` block of logits, accurate on confident rows.

The loss of a row is computed as ``log1p(R / E)``, where ``E = exp(z_t)`` is the true class's term
and ``R = sum_{j != t} exp(z_j)`` the sum of the others, both in the input's dtype (one ``exp`` per
logit, no max shift), the ratio and the ``log1p`` in float64. Every quantity is positive, so the
loss is never negative, and a confident row (``R / E`` tiny) keeps its digits: the relative error is
that of ``R`` and ``E`` themselves, a few units in the last place of the input dtype, whatever the
margin. ``log(sum_j exp(z_j)) - z_t`` (the unshifted form) and torch's ``log_softmax`` (the shifted
form) both lose every digit of such a row: they subtract two nearly equal numbers.

A row whose ``E`` or ``R`` left the dtype's normal range (a logit above about 88 in float32, or
terms small enough to be subnormal) is recomputed in float64 with the max shift and the argmax term
dropped from the sum (:func:`nll_shifted64`), so each row's value depends on the row alone. On the
CPU one ``aminmax`` of ``E`` and of ``R`` says whether any row left it, and only those rows are
recomputed (memory reads, not a device sync; both reads are declared with
:func:`~xent_metrics.functional._chunks.cpu_read`). Other devices, where reading
a mask would be a host sync and every op is a kernel launch, run the float64 form for every row: a
fixed number of ops per block whatever the values, exact on confident rows too. This is the one dtype
policy of every kernel (:func:`~xent_metrics.functional._chunks.kernel_dtype`); the binary kernel
applies it to elements.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics.functional import _chunks
from xent_metrics.functional._chunks import cpu_read


@functools.lru_cache(maxsize=64)
def _limits(dtype: torch.dtype, classes: int) -> tuple[float, float, float]:
    """``(tiny, big, floor)``: ``exp(z_t)`` must lie in ``[tiny, big]`` and the rest sum in ``[floor, big]``.

    ``floor = C tiny / eps * 2``: subnormal or flushed terms, each off by less than ``tiny``, then cost the
    sum less than one unit in its last place.
    """
    info = torch.finfo(dtype)
    return info.tiny, info.max, classes * info.tiny / info.eps * 2


def nll_shifted64(z: Tensor, t: Tensor) -> Tensor:
    """Float64 ``-log softmax(z)[i, t_i]`` as ``log1p(sum_{j != argmax} exp(z_j - m)) + (m - z_t)``, ``m`` the row max.

    Float32 inputs are widened first, so the differences are exact; float64 differences round to
    ``|z_j - m| 2**-53``. Every row is in range, so no row needs a second look: a fixed number of ops
    whatever the data (nine). ``m - z_t`` is ``nll_loss`` of the shifted row: the negated ``z_t - m``,
    exact. One float64 copy of the block is the only block-sized temporary (in place unless autograd
    records: then out of place, and the gradient flows).
    """
    wide = z.to(torch.float64, copy=True)
    top, arg = wide.max(1, keepdim=True)
    if torch.is_grad_enabled() and z.requires_grad:
        shifted = wide - top
        rest = shifted.exp().scatter(1, arg, 0).sum(1)
        return rest.log1p() + F.nll_loss(shifted, t, reduction="none")
    shifted = wide.sub_(top)
    margin = F.nll_loss(shifted, t, reduction="none")  # before the in-place exp
    rest = shifted.exp_().scatter_(1, arg, 0).sum(1)
    return rest.log1p_() + margin


def nll_from_logits(z: Tensor, t: Tensor, work: Tensor | None = None) -> Tensor:
    """Float64 ``-log softmax(z)[i, t_i]`` of a ``(m, C)`` float32 or float64 block (see the module docstring).

    ``work`` (a buffer of at least ``max(m, 2)`` rows of the block's width and dtype) holds the ``exp``
    terms; without it (autograd) the same ops allocate and give the same digits.
    """
    if not z.is_cpu or _chunks.DEVICE_PATH_ON_CPU:  # no host read, no data-dependent shape: float64 for every row
        return nll_shifted64(z, t)
    if z.requires_grad and torch.is_grad_enabled():
        return _nll_recorded(z, t)
    own, rest = exp_terms(z, t, work)
    return nll_from_terms(z, t, own, rest)


def _nll_recorded(z: Tensor, t: Tensor) -> Tensor:
    """:func:`nll_from_logits` under autograd: the out-of-range rows' ``exp`` terms stay out of the graph.

    ``exp``'s backward multiplies the gradient by the term: a zero gradient times an overflowed term is
    ``nan``. So the rows are sorted first without autograd, and only the rows inside get ``exp`` terms
    with a gradient; the others only their float64 recompute (:func:`nll_shifted64`).
    """
    with torch.no_grad():
        own, rest = exp_terms(z, t)
        ok = _inside(own, rest, rest.double() / own.double(), _limits(own.dtype, z.shape[1]))
    if _all_rows(ok):
        own, rest = exp_terms(z, t)
        return nll_from_terms(z, t, own, rest)
    good, bad = _rows_outside(~ok), _rows_outside(ok)
    own, rest = exp_terms(z[good], t[good])
    nll = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    nll = nll.index_put((good,), (rest.double() / own.double()).log1p())
    return nll.index_put((bad,), nll_shifted64(z[bad], t[bad]))


def _inside(own: Tensor, rest: Tensor, ratio: Tensor, limits: tuple[float, float, float]) -> Tensor:
    """Per row: whether its terms lie within ``limits`` (see :func:`_limits`) and the float64 ratio is finite."""
    tiny, big, floor = limits
    return (own >= tiny) & (own <= big) & (rest >= floor) & (rest <= big) & (ratio <= big)


def exp_terms(z: Tensor, t: Tensor, work: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per row of a ``(m, C)`` block: ``exp(z_t)`` and the sum of the row's other exponentials, in ``z``'s dtype.

    A single row is summed as one of two identical rows: torch splits the sum of a lone long row across
    threads, in another order, so a row's digits would depend on the block.
    """
    rows = z.shape[0]
    wide, index = (z, t[:, None]) if rows != 1 else (z.expand(2, -1), t.expand(2)[:, None])
    if work is None and z.requires_grad and torch.is_grad_enabled():
        exps = torch.exp(wide)
        own, rest = exps.gather(1, index), exps.scatter(1, index, 0).sum(1)
    else:  # a fresh or borrowed buffer that nothing else holds
        exps = torch.exp(wide) if work is None else torch.exp(wide, out=work[: wide.shape[0]])
        own = exps.gather(1, index)
        rest = exps.scatter_(1, index, 0).sum(1)
    return (own[:, 0], rest) if rows != 1 else (own[:1, 0], rest[:1])


def nll_from_terms(z: Tensor, t: Tensor, own: Tensor, rest: Tensor) -> Tensor:
    """Float64 ``log1p(rest / own)`` per row, ``own = exp(z_t)``, ``rest`` the sum of the row's other exponentials.

    Rows whose ``own`` or ``rest`` left :func:`_limits` (or whose float64 ratio overflows) are recomputed
    with :func:`nll_shifted64`. One ``aminmax`` of each says whether every row is inside (the usual case:
    no per-row check); otherwise the rows are checked one by one. Either way a row's value depends on
    the row alone. Off the CPU (the fused kernel) the check is a ``where``: no host read.
    """
    tiny, big, floor = _limits(own.dtype, z.shape[1])
    grad = torch.is_grad_enabled() and z.requires_grad
    # float64 / float32 divides in float64 (the promoted dtype): the ratio of the exactly widened terms
    ratio = rest.double() / own if grad else rest.to(torch.float64, copy=True).div_(own)
    if z.is_cpu and not _chunks.DEVICE_PATH_ON_CPU and rows_inside(own, rest, ratio, (tiny, big, floor)):
        return ratio.log1p_()
    ok = _inside(own, rest, ratio, (tiny, big, floor))
    if grad:  # a finite ratio everywhere: no nan gradient from dropped rows
        ratio = torch.where(ok, rest, 0).double() / torch.where(ok, own, 1).double()
    nll = torch.where(ok, ratio, 0).log1p()
    if not z.is_cpu or _chunks.DEVICE_PATH_ON_CPU:
        return torch.where(ok, nll, nll_shifted64(z, t))
    bad = _rows_outside(ok)
    return nll.index_put((bad,), nll_shifted64(z[bad], t[bad]))


@cpu_read
def _all_rows(ok: Tensor) -> bool:
    """Whether every row is ``ok`` (a CPU read)."""
    return bool(ok.all())


@cpu_read
def _rows_outside(ok: Tensor) -> Tensor:
    """The indices of the rows not ``ok`` (a data-dependent shape: a CPU read)."""
    return (~ok).nonzero().squeeze(1)


@cpu_read
def rows_inside(own: Tensor, rest: Tensor, ratio: Tensor, limits: tuple[float, float, float]) -> bool:
    """Whether every row's terms lie within ``limits``: two ``aminmax`` and a max (CPU memory reads)."""
    if not own.numel():
        return True
    tiny, big, floor = limits
    if ratio.requires_grad:
        own, rest, ratio = own.detach(), rest.detach(), ratio.detach()
    own_low, own_high = torch.aminmax(own)
    rest_low, rest_high = torch.aminmax(rest)
    fits = float(own_low) >= tiny and float(own_high) <= big and float(rest_low) >= floor and float(rest_high) <= big
    return fits and (ratio.dtype != rest.dtype or float(ratio.max()) <= big)
