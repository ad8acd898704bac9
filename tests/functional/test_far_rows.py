"""Float32 rows and elements past float32's range (margins beyond about 87 nats) against mpmath, relative tolerance.

The CPU kernels find such rows (multiclass: ``exp`` of a logit overflows, or every term is subnormal) and elements
(binary: the tail term ``exp(-|z|)`` is subnormal) and recompute only those in float64. Their losses are tiny
(1e-40 and below) or large with tiny digits that matter: an absolute tolerance accepts 0 or a float32 rounding for
them, so every check here is relative alone. ``average=None`` with one row per class (one element per label) makes
each reported value one row's loss. Each batch mixes such rows with ordinary ones, so the recompute of some rows
inside a block runs, not only the all-inside or all-outside paths. Expected values are mpmath at 40 digits on the
float32 inputs (exact in float64), never the package's own rule.
"""

from __future__ import annotations

import mpmath
import pytest
import torch

from xent_metrics.functional import multiclass_cross_entropy, multilabel_cross_entropy

#: Float32 inputs, float64 recompute: the far rows get float64's digits, ordinary rows float32's.
RTOL = 1e-6

#: (logits, true class) rows: ordinary ones, true-class margins of 88 to 600 nats, a row whose every ``exp``
#: overflows float32, one whose every term is subnormal, one whose true term is normal but the others' sum
#: subnormal, and confidently wrong rows past the range.
ROWS = [
    ([0.3, -1.2, 2.1, 0.7, -0.4, 1.1, 0.2, -2.3], 3),
    ([95.0, 2.0, -3.0, 0.5, 1.0, 0.0, -1.0, 3.0], 0),
    ([1.0, 600.0, 0.0, -7.0, 2.5, 1.0, 0.3, -0.3], 1),
    ([110.5, 120.25, 130.75, 100.0, 99.0, 125.0, 111.0, 101.0], 2),
    ([-110.0, -125.5, -101.0, -130.0, -100.5, -140.0, -119.0, -104.0], 4),
    ([0.0, 0.0, 0.0, 0.0, 0.0, -300.0, 0.0, 0.0], 5),
    ([-1.5, 2.0, 0.4, 0.1, 0.0, 1.0, 88.75, -0.8], 6),
    ([-95.0, -97.5, -99.0, -96.0, -101.0, -98.0, -100.0, 0.5], 7),
]


def _mp_nll(row: list[float], target: int) -> float:
    """``-log softmax(row)[target]`` as ``log1p(sum_{j != t} exp(z_j - z_t))`` at 40 digits: no cancellation."""
    with mpmath.workdps(40):
        top = mpmath.mpf(row[target])
        rest = mpmath.fsum(mpmath.exp(mpmath.mpf(z) - top) for j, z in enumerate(row) if j != target)
        return float(mpmath.log1p(rest))


def _mp_binary(value: float, target: int, input_format: str) -> float:
    """``-log p`` (target 1) or ``-log(1 - p)`` (target 0) of a logit or a log-probability, at 40 digits."""
    with mpmath.workdps(40):
        v = mpmath.mpf(value)
        if input_format == "logits":
            return float(mpmath.log1p(mpmath.exp(-v if target else v)))
        return float(-v if target else -mpmath.log1p(-mpmath.exp(v)))


def _assert_relative(got: torch.Tensor, expected: list[float]) -> None:
    want = torch.tensor(expected, dtype=torch.float64)
    assert torch.all(want > 0)
    error = ((got.double() - want).abs() / want).max().item()
    assert error <= RTOL, (error, got.tolist(), expected)


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "autograd"])
@pytest.mark.parametrize("order", [list(range(8)), [3, 1, 4, 0, 5, 2, 7, 6]], ids=["as-listed", "shuffled"])
def test_multiclass_far_rows_keep_their_relative_digits(order: list[int], grad: bool) -> None:
    preds = torch.tensor([ROWS[i][0] for i in order], dtype=torch.float32, requires_grad=grad)
    target = torch.tensor([ROWS[i][1] for i in order])
    got = multiclass_cross_entropy(preds, target, average=None)
    expected = [0.0] * 8
    for i in order:
        expected[ROWS[i][1]] = _mp_nll(*ROWS[i])
    _assert_relative(got.detach(), expected)
    if grad:  # the gradient flows through the recomputed rows: softmax - one-hot, from float64 torch
        got.sum().backward()
        wide = preds.detach().double().requires_grad_()
        torch.nn.functional.cross_entropy(wide, target, reduction="sum").backward()
        assert preds.grad is not None and wide.grad is not None
        torch.testing.assert_close(preds.grad.double(), wide.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rows", [[1], [3], [4], [7]], ids=["margin-95", "overflow", "subnormal", "subnormal-rest"])
def test_a_lone_far_row_keeps_its_relative_digits(rows: list[int]) -> None:
    """A batch of far rows only: every row recomputed (and the mean of one row is its loss)."""
    (row, target), = [ROWS[i] for i in rows]
    got = multiclass_cross_entropy(torch.tensor([row], dtype=torch.float32), torch.tensor([target]))
    _assert_relative(got[None], [_mp_nll(row, target)])


#: One row of labels: ordinary elements and tails past float32's normal range (|z| > 86.3, log p < -86.3).
ELEMENTS = {
    "logits": ([0.3, 90.0, -90.0, 150.5, -300.25, -2.2, 87.5, 1e-3], [1, 1, 0, 0, 1, 0, 1, 1]),
    "log_probs": ([-0.3, -90.0, -150.5, -1e-3, -2.2, -88.0, -400.0, -0.7], [1, 0, 0, 1, 0, 0, 0, 1]),
}


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "autograd"])
@pytest.mark.parametrize("input_format", sorted(ELEMENTS))
def test_binary_far_elements_keep_their_relative_digits(input_format: str, grad: bool) -> None:
    values, targets = ELEMENTS[input_format]
    preds = torch.tensor([values], dtype=torch.float32, requires_grad=grad)
    got = multilabel_cross_entropy(preds, torch.tensor([targets]), input_format=input_format, average=None)
    _assert_relative(got.detach(), [_mp_binary(v, t, input_format) for v, t in zip(values, targets, strict=True)])


def test_binary_far_elements_with_soft_targets_and_weights() -> None:
    """Soft targets and sample weights take the general kernel: its recompute of far elements, relative too."""
    values, _ = ELEMENTS["logits"]
    preds = torch.tensor([values, values], dtype=torch.float32)
    soft = torch.tensor([[0.75] * 8, [0.25] * 8], dtype=torch.float64)
    weight = torch.tensor([0.3, 1.7], dtype=torch.float64)
    got = multilabel_cross_entropy(preds, soft, sample_weight=weight, average=None)
    expected = []
    for v in values:
        loss = [y * _mp_binary(v, 1, "logits") + (1 - y) * _mp_binary(v, 0, "logits") for y in (0.75, 0.25)]
        expected.append((0.3 * loss[0] + 1.7 * loss[1]) / 2.0)
    _assert_relative(got, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_targets_on_confident_rows_keep_their_relative_digits(dtype: torch.dtype) -> None:
    """Soft targets whose mass sits on each row's argmax class, 35 to 600 nats ahead: losses of 1e-15 and below."""
    rows = [([35.0, 0.0, -2.0, 1.5], 0), ([-1.0, 3.0, 41.5, 2.0], 2), ([0.5, 600.0, 0.0, -0.25], 1)]
    preds = torch.tensor([r for r, _ in rows], dtype=dtype)
    mass = torch.tensor([[1.0 if j == c else 0.0 for j in range(4)] for _, c in rows], dtype=dtype)
    got = multiclass_cross_entropy(preds, mass, average=None)  # each class: one row's loss
    expected = [0.0] * 4
    for row, target in rows:
        expected[target] = _mp_nll([float(v) for v in torch.tensor(row, dtype=dtype).tolist()], target)
    _assert_relative(got[[0, 1, 2]], [expected[0], expected[1], expected[2]])
