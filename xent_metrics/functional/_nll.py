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
CPU only those rows are recomputed (a memory read, not a device sync); on other devices, where
reading the mask would be a host sync, the float64 form runs for the block and ``torch.where`` picks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xent_metrics.functional._chunks import Scratch


def _range(dtype: torch.dtype, classes: int) -> tuple[float, float, float]:
    """``(tiny, max, floor)``: ``E`` must be normal and finite; ``R >= floor`` keeps flushed terms below 1 ulp."""
    info = torch.finfo(dtype)
    return info.tiny, info.max, classes * info.tiny / info.eps * 2


def nll_shifted64(z: Tensor, t: Tensor) -> Tensor:
    """Float64 ``-log softmax(z)[i, t_i]`` as ``(m - z_t) + log1p(sum_{j != argmax} exp(z_j - m))``, ``m`` the row max.

    Float32 inputs are widened first, so the differences are exact; float64 differences round to
    ``|z_j - m| 2**-53``. Out of place: autograd flows through it.
    """
    z = z.double()
    top, arg = z.max(1, keepdim=True)
    rest = (z - top).exp().scatter(1, arg, 0).sum(1)
    return (top.squeeze(1) - z.gather(1, t[:, None]).squeeze(1)) + rest.log1p()


def nll_from_logits(z: Tensor, t: Tensor, scratch: Scratch | None = None) -> Tensor:
    """Float64 ``-log softmax(z)[i, t_i]`` of a ``(m, C)`` float32 or float64 block (see the module docstring).

    ``scratch`` (at least two rows of the block's width) lends the ``exp`` buffer; without it
    (autograd) the same ops allocate and give the same digits. A single row is summed as one of two
    identical rows: torch splits the sum of a lone long row across threads, in another order.
    """
    rows = z.shape[0]
    wide, index = (z, t[:, None]) if rows != 1 else (z.expand(2, -1), t.expand(2)[:, None])
    if scratch is None:
        exps = torch.exp(wide)
        own, rest = exps.gather(1, index), exps.scatter(1, index, 0).sum(1)
    else:
        exps = torch.exp(wide, out=scratch.take(0, wide.shape[0]))
        own = exps.gather(1, index)
        rest = exps.scatter_(1, index, 0).sum(1)
    return nll_from_ratio_terms(z, t, own[:rows, 0], rest[:rows], in_place=scratch is not None)


def nll_from_ratio_terms(z: Tensor, t: Tensor, own: Tensor, rest: Tensor, *, in_place: bool = False) -> Tensor:
    """Float64 ``log1p(rest / own)`` per row; rows whose terms left the normal range are recomputed (module docstring).

    ``own`` is ``exp(z_t)`` and ``rest`` the sum of the other ``exp(z_j)`` of each row of ``z``, in ``z``'s dtype.
    """
    tiny, big, floor = _range(z.dtype, z.shape[1])
    ok = (own >= tiny) & (own <= big) & (rest >= floor) & (rest <= big)
    ratio = torch.where(ok, rest, 0).double() / torch.where(ok, own, 1).double()  # finite, also for autograd
    nll = ratio.log1p_() if in_place else ratio.log1p()
    if z.device.type != "cpu":
        return torch.where(ok, nll, nll_shifted64(z, t))
    if bool(ok.all()):  # CPU: a memory read, not a device sync
        return nll
    bad = (~ok).nonzero().squeeze(1)
    return nll.index_put((bad,), nll_shifted64(z[bad], t[bad]))
