"""Probability rows given as logits (the default ``input_format``) warn, in the multiclass task only.

The rule: with ``validate_args=True``, every value in [0, 1], some strictly between 0 and 1 and every row
summing to 1 within ``1e-8 + sqrt(eps)`` of the dtype (``eps`` for float16 and bfloat16). Each case sits on
or one step off a bound; values come from torch float64 (``F.cross_entropy``, ``F.nll_loss``), never from
the package.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity
from xent_metrics.functional import (
    binary_cross_entropy,
    cross_entropy,
    multiclass_cross_entropy,
    multiclass_normalized_entropy,
    multilabel_cross_entropy,
)

WARNS = r"`preds` look like probabilities, not logits: .*every row sums to 1 .*Pass input_format='probs'"
P = torch.tensor([[0.3, 0.6, 0.1], [0.2, 0.2, 0.6], [0.7, 0.1, 0.2], [0.25, 0.25, 0.5]], dtype=torch.float64)
Y = torch.tensor([1, 2, 0, 1])


def _tolerance(dtype: torch.dtype) -> float:
    """The tolerance the docstring and the warning state: eps for the 16-bit floats, else 1e-8 + sqrt(eps)."""
    eps = torch.finfo(dtype).eps
    return eps if dtype in (torch.float16, torch.bfloat16) else 1e-8 + math.sqrt(eps)


def _silent(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_probability_rows_given_as_logits_warn_and_the_value_is_the_logits_one(dtype: torch.dtype) -> None:
    p = P.to(dtype)
    with pytest.warns(UserWarning, match=WARNS) as record:
        got = multiclass_cross_entropy(p, Y)
    assert len(record) == 1
    assert f"for {dtype}" in str(record[0].message)
    # the warning is about a real difference: read as logits (torch's value) vs read as probabilities
    as_logits = F.cross_entropy(p.double(), Y).item()
    as_probs = F.nll_loss(p.double().log(), Y).item()
    assert got.item() == pytest.approx(as_logits, rel=1e-6 if dtype == torch.float64 else 2e-3)
    assert abs(as_logits - as_probs) > 0.1
    right = _silent(multiclass_cross_entropy, p, Y, input_format="probs")  # the fix it names: no warning
    assert right.item() == pytest.approx(as_probs, rel=1e-12 if dtype == torch.float64 else 1e-2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("offset", "warns"), [(0.9, True), (-0.9, True), (1.1, False), (-1.1, False)])
def test_row_sums_inside_the_tolerance_warn_and_just_outside_do_not(
    dtype: torch.dtype, offset: float, warns: bool
) -> None:
    p = P.clone()
    # row 2 sums to 1 + offset * tolerance: 0.5 and 0.4375 are exact in every dtype, and the last value's
    # rounding (its ulp is 1/16 of the tolerance or less in every dtype) keeps the offset within 0.9 or 1.1 +- 0.03
    p[2] = torch.tensor([0.5, 0.4375, 0.0625 + offset * _tolerance(dtype)], dtype=torch.float64)
    p = p.to(dtype)
    row = p[2].double().sum().item()
    assert (abs(row - 1) <= _tolerance(dtype)) == warns  # the case is on the side of the bound it claims
    if warns:
        with pytest.warns(UserWarning, match=WARNS):
            multiclass_cross_entropy(p, Y)
    else:
        got = _silent(multiclass_cross_entropy, p, Y)
        assert got.item() == pytest.approx(F.cross_entropy(p.double(), Y).item(), rel=1e-6)


def test_one_ulp_outside_the_unit_interval_does_not_warn() -> None:
    below = torch.nextafter(torch.tensor(0.0, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64))
    above = torch.nextafter(torch.tensor(1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.7, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    with pytest.warns(UserWarning, match=WARNS):  # 0 and 1 themselves are inside: it warns
        multiclass_cross_entropy(rows, y)
    for edit in ({(0, 0): above.item()}, {(1, 2): below.item(), (1, 1): 0.7 - below.item()}):
        p = rows.clone()
        for (i, j), value in edit.items():
            p[i, j] = value
        assert p.sum(1).sub(1).abs().max().item() <= _tolerance(torch.float64)  # rows still sum to 1
        got = _silent(multiclass_cross_entropy, p, y)
        assert got.item() == pytest.approx(F.cross_entropy(p, y).item(), rel=1e-13)


def test_one_hot_rows_and_all_zero_logits_do_not_warn() -> None:
    y = torch.tensor([0, 2, 1])
    eye = torch.eye(3, dtype=torch.float64)[y]  # 0 and 1 only: no value strictly between
    assert _silent(multiclass_cross_entropy, eye, y).item() == pytest.approx(F.cross_entropy(eye, y).item(), rel=1e-13)
    zeros = torch.zeros(3, 3)  # rows sum to 0
    assert _silent(multiclass_cross_entropy, zeros, y).item() == pytest.approx(math.log(3), rel=1e-7)
    halves = torch.full((2, 2, 3), 0.5)  # (N, C, L): rows over dim 1 sum to 1
    with pytest.warns(UserWarning, match=WARNS):
        multiclass_cross_entropy(halves, torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_random_logits_never_warn(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(61)
    for n, c, scale in ((1, 2, 1.0), (7, 3, 0.3), (64, 10, 1.0), (256, 1000, 3.0), (5, 2, 30.0)):
        for _ in range(10):
            z = (torch.randn(n, c, generator=gen, dtype=torch.float64) * scale).to(dtype)
            y = torch.randint(0, c, (n,), generator=gen)
            if bool(((z >= 0) & (z <= 1)).all()):
                continue  # a (1, 2) draw inside [0, 1]: not random logits in the sense of the rule
            _silent(multiclass_cross_entropy, z, y)


def test_binary_and_multilabel_logits_in_the_unit_interval_do_not_warn() -> None:
    p = torch.tensor([[0.3, 0.7], [0.5, 0.5]], dtype=torch.float64)
    yl = torch.tensor([[0, 1], [1, 0]])
    got = _silent(multilabel_cross_entropy, p, yl)
    assert got.item() == pytest.approx(F.binary_cross_entropy_with_logits(p, yl.double()).item(), rel=1e-13)
    got = _silent(binary_cross_entropy, p[0], yl[0])
    assert got.item() == pytest.approx(F.binary_cross_entropy_with_logits(p[0], yl[0].double()).item(), rel=1e-13)
    _silent(cross_entropy, p, yl, task="multilabel")


def test_validate_args_false_and_other_formats_do_not_warn() -> None:
    _silent(multiclass_cross_entropy, P, Y, validate_args=False)
    _silent(multiclass_cross_entropy, P, Y, input_format="probs")
    _silent(multiclass_cross_entropy, P.log(), Y, input_format="log_probs")


def test_every_multiclass_face_warns() -> None:
    soft = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    faces = [
        lambda: multiclass_cross_entropy(P, soft),  # soft targets: the check is on preds
        lambda: multiclass_normalized_entropy(P, Y),
        lambda: cross_entropy(P, Y, task="multiclass"),
        lambda: multiclass_cross_entropy(P.float(), Y, fused=True),
        lambda: MulticlassCrossEntropy(3).update(P, Y),
        lambda: MulticlassNormalizedEntropy(3)(P, Y),
        lambda: Perplexity().update(P[None], Y[None]),  # (B, L, V): the rows are over V
    ]
    for face in faces:
        with pytest.warns(UserWarning, match=WARNS):
            face()


@settings(deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]),
)
def test_fuzz_softmax_rows_given_as_logits_always_warn(n: int, c: int, seed: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64) * 3, 1)  # rows of a real model
    p = p.to(dtype)
    if bool(((p == 0) | (p == 1)).all()) or (p.double().sum(1) - 1).abs().max().item() > _tolerance(dtype):
        return  # all rows one-hot after rounding, or a low-precision row whose rounding left the tolerance
    y = torch.randint(0, c, (n,), generator=gen)
    with pytest.warns(UserWarning, match=WARNS):
        got = multiclass_cross_entropy(p, y)
    assert got.item() == pytest.approx(F.cross_entropy(p.double(), y).item(), rel=1e-6)
    _silent(multiclass_cross_entropy, p, y, input_format="probs")
