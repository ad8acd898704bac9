"""On the CPU, only the rows whose terms leave the dtype's range take the float64 form, and only when some do.

The kernels' CPU path (``_nll``) computes ``log1p(R / exp(z_t))`` in the block's dtype and recomputes with
:func:`~xent_metrics.functional._nll.nll_shifted64` (a float64 copy of the rows) just the rows outside
``_limits``: a block of confident rows costs a copy of those rows, not of the block. Values against
``F.cross_entropy`` in float64 and mpmath; the rows recomputed are counted with a spy on ``nll_shifted64``.
"""

from __future__ import annotations

import mpmath
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from xent_metrics.functional import _nll, multiclass_cross_entropy


@pytest.fixture
def recomputed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row counts every call of ``nll_shifted64`` received."""
    seen: list[int] = []
    original = _nll.nll_shifted64

    def spy(z: Tensor, t: Tensor) -> Tensor:
        seen.append(z.shape[0])
        return original(z, t)

    monkeypatch.setattr(_nll, "nll_shifted64", spy)
    return seen


def _mp_nll(row: list[float], target: int) -> float:
    with mpmath.workdps(40):  # log1p of the others' share: no cancellation however confident the row
        top = mpmath.mpf(row[target])
        others = mpmath.fsum(mpmath.exp(mpmath.mpf(v) - top) for j, v in enumerate(row) if j != target)
        return float(mpmath.log1p(others))


def _block(far_rows: list[int]) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(11)
    z = torch.randn(64, 7, generator=g) * 2.3
    t = torch.randint(0, 7, (64,), generator=g)
    for i in far_rows:  # exp(z_t) overflows float32: the ratio form cannot hold the row
        z[i, t[i]] = 95.3
    return z, t


@pytest.mark.parametrize("grad", [False, True])
def test_only_out_of_range_rows_are_recomputed(recomputed: list[int], grad: bool) -> None:
    z, t = _block([5, 40])
    z.requires_grad_(grad)
    got = _nll.nll_from_logits(z, t)
    assert recomputed == [2], recomputed  # the two far rows, in one call
    want = F.cross_entropy(z.detach().double(), t, reduction="none")
    far = [5, 40]
    near = [i for i in range(64) if i not in far]
    torch.testing.assert_close(got.detach()[near], want[near], rtol=2e-7, atol=0)
    mp = torch.tensor([_mp_nll(z.detach()[i].tolist(), int(t[i])) for i in far], dtype=torch.float64)
    torch.testing.assert_close(got.detach()[far], mp, rtol=1e-12, atol=0)
    if grad:
        got.sum().backward()
        assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("grad", [False, True])
def test_a_block_inside_the_range_is_never_recomputed(recomputed: list[int], grad: bool) -> None:
    z, t = _block([])
    z.requires_grad_(grad)
    got = _nll.nll_from_logits(z, t)
    assert recomputed == []
    torch.testing.assert_close(got.detach(), F.cross_entropy(z.detach().double(), t, reduction="none"),
                               rtol=2e-7, atol=0)
    value = multiclass_cross_entropy(z.detach(), t)
    assert recomputed == []
    torch.testing.assert_close(value.double(), F.cross_entropy(z.detach().double(), t), rtol=2e-7, atol=0)


@pytest.mark.parametrize("grad", [False, True])
def test_float64_rows_whose_ratio_overflows_take_the_shifted_form(recomputed: list[int], grad: bool) -> None:
    """Float64 terms inside the dtype's range whose ratio is not: ``exp(-700)`` against ``exp(700)``.

    The ratio ``R / exp(z_t)`` overflows float64 (1e608), so such a row must be recomputed; the others keep the
    ratio form. Against mpmath (40 digits).
    """
    g = torch.Generator().manual_seed(12)
    z = torch.randn(9, 5, generator=g, dtype=torch.float64) * 1.3
    t = torch.randint(0, 5, (9,), generator=g)
    z[3] = 700.3
    z[3, t[3]] = -700.1
    z.requires_grad_(grad)
    got = _nll.nll_from_logits(z, t).detach()
    assert recomputed == [1], recomputed
    want = torch.tensor([_mp_nll(z.detach()[i].tolist(), int(t[i])) for i in range(9)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=0)
