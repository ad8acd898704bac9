"""The chunked kernels: any block size gives the same sums, equal to float64 references, in every path.

References are computed independently in numpy float64 (``scipy.special.logsumexp`` and
``np.logaddexp`` for the softplus), never with the kernels under test.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from xent_metrics.functional import _chunks
from xent_metrics.functional._bce import bce_sums, column_sums
from xent_metrics.functional._chunks import bce_plan, chunk_rows, row_slices, softmax_plan
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.functional.multilabel import MultilabelTask

CHUNKS = [1, 7, 64, 1000, None]  # None: the module default (one block here)


def _ce(preds, target, chunk=None, sample_weight=None, class_weight=None, **options):
    options = MulticlassTask(weight=class_weight, **options)
    return softmax_ce_sums(preds, target, options, sample_weight, chunk_elements=chunk)


def _bce(preds, target, chunk=None, sample_weight=None, **options):
    return bce_sums(preds, target, MultilabelTask(**options), sample_weight, chunk_elements=chunk)


def _np_ce_sums(z, y, w=None, cw=None, smoothing=0.0, ignore=None):
    """(3, C) sums of the hard-target multiclass loss, float64 numpy, from the definitions."""
    z, y = np.asarray(z, np.float64), np.asarray(y)
    n, c = z.shape
    w = np.ones(n) if w is None else np.asarray(w, np.float64)
    cw = np.ones(c) if cw is None else np.asarray(cw, np.float64)
    if ignore is not None:
        w = np.where(y == ignore, 0.0, w)
        y = np.where(y == ignore, 0, y)
    log_p = z - logsumexp(z, axis=1, keepdims=True)
    nll = -log_p[np.arange(n), y]
    per_row = (1 - smoothing) * cw[y] * nll - smoothing / c * (log_p * cw).sum(1)
    sums = np.zeros((3, c))
    np.add.at(sums[0], y, w * per_row)
    np.add.at(sums[1], y, w * cw[y])
    np.add.at(sums[2], y, w * (1 - smoothing))
    sums[2] += w.sum() * smoothing / c
    return sums


def _np_bce_sums(z, y, w=None):
    """(3, K) sums of the per-label BCE from logits, float64 numpy: logaddexp(0, +-z) is exact in both tails."""
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    w = np.ones(z.shape[0]) if w is None else np.asarray(w, np.float64)
    loss = y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)
    return np.stack([(w[:, None] * loss).sum(0), np.full(z.shape[1], w.sum()), (w[:, None] * y).sum(0)])


def _close(got: torch.Tensor, expected: np.ndarray, rtol: float) -> None:
    np.testing.assert_allclose(got.numpy(), expected, rtol=rtol, atol=0)


# ----------------------------------------------------------------------------------- block splitting
def test_row_slices_cover_every_row_once_with_the_requested_block() -> None:
    for rows, numel, chunk in [(97, 5, 1), (97, 5, 7), (97, 5, 10**6), (0, 5, 7), (3, 0, 7), (10, 3, 9)]:
        slices = list(row_slices(rows, numel, chunk))
        covered = [i for s in slices for i in range(s.start, s.stop)]
        assert covered == list(range(rows))
        assert all(s.stop - s.start == chunk_rows(numel, chunk) for s in slices[:-1])
    assert chunk_rows(1000, 1 << 18) == 262 and chunk_rows(10**6, 1 << 18) == 1


def test_the_binary_plan_names_its_buffers_and_each_has_one_dtype() -> None:
    z = torch.zeros(100, 4)
    plan = bce_plan(z, 40, buffered=True, masked=False)  # a quarter of 40 elements: 2-row blocks
    assert plan.dtype == torch.float32 and [(s.start, s.stop) for s in plan.blocks[:2]] == [(0, 2), (2, 4)]
    assert plan.buffers is not None and plan.buffers.wide is not None
    assert (plan.buffers.loss.dtype, plan.buffers.spare.dtype, plan.buffers.wide.dtype) == (
        torch.float32,
        torch.float32,
        torch.float64,
    )
    assert plan.buffers.loss.shape == plan.buffers.spare.shape == plan.buffers.wide.shape == (2, 4)
    assert len({plan.buffers.loss.data_ptr(), plan.buffers.spare.data_ptr(), plan.buffers.wide.data_ptr()}) == 3
    wide = bce_plan(z.double(), 40, buffered=True, masked=True)  # float64: no widening buffer; an eighth: 1 row
    assert wide.buffers is not None and wide.buffers.wide is None and wide.buffers.loss.shape == (1, 4)
    assert bce_plan(z, 40, buffered=False, masked=False).buffers is None  # the general kernel allocates its own
    assert bce_plan(z.requires_grad_(), 40, buffered=True, masked=False).buffers is None  # autograd: out of place


def test_the_multiclass_plan_allocates_its_one_buffer_only_where_a_block_uses_it() -> None:
    z = torch.zeros(100, 10, dtype=torch.float16)
    plan = softmax_plan(z, 30, soft=False, gather=False, fused=False, plain=False, work=True)
    assert plan.work is not None and plan.work.dtype == torch.float32 and plan.work.shape == (3, 10)
    assert [(s.start, s.stop) for s in plan.eager[-2:]] == [(96, 99), (99, 100)] and not plan.fused
    one_row = softmax_plan(z, 10, soft=False, gather=False, fused=False, plain=False, work=True)
    assert one_row.work is not None and one_row.work.shape == (2, 10)  # a lone row is summed as one of two
    assert softmax_plan(z, 30, soft=False, gather=False, fused=False, plain=False, work=False).work is None
    assert softmax_plan(z, 4000, soft=False, gather=False, fused=False, plain=True, work=True).work is None  # per step
    grad = z.float().requires_grad_()
    assert softmax_plan(grad, 30, soft=False, gather=False, fused=False, plain=False, work=True).work is None
    fused = softmax_plan(z, 30, soft=False, gather=False, fused=True, plain=False, work=True)
    assert [len(range(100)[s]) for s in fused.fused] == [3] * 33 and [(s.start, s.stop) for s in fused.eager] == [
        (99, 100)
    ]


@pytest.mark.parametrize("rows", [1, 15, 16, 17, 100])
def test_column_sums_widen_float32_before_adding(rows: int) -> None:
    gen = torch.Generator().manual_seed(rows)
    values = torch.rand(rows, 3, generator=gen) * 1e3
    values[0] += 2.0**24  # a float32 sum would drop the fractional parts of every later row
    expected = values.double().numpy().sum(0)
    for wide in (None, torch.empty(rows, 3, dtype=torch.float64)):
        got = column_sums(values, wide)
        assert got.dtype == torch.float64
        _close(got, expected, rtol=1e-15)
    _close(column_sums(values.double()), expected, rtol=1e-15)


@pytest.fixture(params=["ratio"])
def kernel(request: pytest.FixtureRequest) -> str:
    """The logits kernel: one for every row length (the log1p-ratio form), a parameter for the ids."""
    return request.param


# ------------------------------------------------------------------ multiclass: block size independence
OPTIONS = [
    {},
    {"label_smoothing": 0.2},
    {"ignore_index": 2},
    {"class_weight": "cw"},
    {"sample_weight": "w", "ignore_index": 0, "label_smoothing": 0.1, "class_weight": "cw"},
]


def _resolve(options: dict, n: int, c: int, dtype: torch.dtype) -> dict:
    gen = torch.Generator().manual_seed(11)
    out = dict(options)
    if out.get("class_weight") == "cw":
        out["class_weight"] = torch.rand(c, generator=gen, dtype=dtype) + 0.5
    if out.get("sample_weight") == "w":
        out["sample_weight"] = torch.rand(n, generator=gen, dtype=dtype)
    return out


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_multiclass_hard_sums_match_float64_reference_for_every_block_size(options: dict, dtype, kernel: str) -> None:
    n, c = 53, 6
    gen = torch.Generator().manual_seed(5)
    z = (torch.randn(n, c, generator=gen, dtype=torch.float64) * 4).to(dtype)
    y = torch.randint(0, c, (n,), generator=gen)
    opts = _resolve(options, n, c, torch.float64)
    ref = _np_ce_sums(
        z.double(),
        y,
        w=None if "sample_weight" not in opts else opts["sample_weight"],
        cw=None if "class_weight" not in opts else opts["class_weight"],
        smoothing=opts.get("label_smoothing", 0.0),
        ignore=opts.get("ignore_index"),
    )
    results = [_ce(z, y, chunk, **opts) for chunk in CHUNKS]
    for got in results:
        assert got.dtype == torch.float64
        _close(got, ref, rtol=1e-12 if dtype == torch.float64 else 2e-6)
        # per-row values are computed independently of the block, so every block size agrees to float64 rounding
        torch.testing.assert_close(got, results[-1], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("fmt", ["probs", "log_probs"])
def test_multiclass_probability_inputs_do_not_depend_on_the_block_size(fmt: str) -> None:
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(41, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (41,), generator=gen)
    p = torch.softmax(z, 1) if fmt == "probs" else torch.log_softmax(z, 1)
    ref = _np_ce_sums(z, y, smoothing=0.1)
    for chunk in CHUNKS:
        _close(_ce(p, y, chunk, input_format=fmt, label_smoothing=0.1), ref, rtol=1e-12)


def test_multiclass_soft_targets_and_trailing_dimensions_do_not_depend_on_the_block_size(kernel: str) -> None:
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(9, 4, 5, generator=gen, dtype=torch.float64)  # (N, C, L)
    soft = torch.softmax(torch.randn(9, 4, 5, generator=gen, dtype=torch.float64), 1)
    hard = torch.randint(0, 4, (9, 5), generator=gen)
    w = torch.rand(9, generator=gen, dtype=torch.float64)
    zl = z.movedim(1, -1).reshape(-1, 4).numpy()
    wl = np.repeat(w.numpy(), 5)
    log_p = zl - logsumexp(zl, axis=1, keepdims=True)
    soft_loss = -(wl[:, None] * soft.movedim(1, -1).reshape(-1, 4).numpy() * log_p).sum(0)
    ref_hard = _np_ce_sums(zl, hard.reshape(-1).numpy(), w=wl)
    for chunk in CHUNKS:
        _close(_ce(z, soft, chunk, sample_weight=w)[0], soft_loss, rtol=1e-12)
        _close(_ce(z, hard, chunk, sample_weight=w), ref_hard, rtol=1e-12)


def test_multiclass_extreme_logits_are_exact(kernel: str) -> None:
    """Overflowing and underflowing rows (recomputed with the shift) stay exact, next to ordinary rows."""
    z = torch.tensor([[0.0, 120.0, -5.0], [1e4, 1e4, 1e4 - 1], [-1e4, 0.0, -1e4], [50.0, -50.0, 0.0]])
    z = torch.cat([z, torch.full((1, 3), -80.0), torch.randn(5, 3)])  # all-small row: exp sum underflows
    y = torch.tensor([0, 1, 1, 0, 2, 0, 1, 2, 0, 1])
    ref = _np_ce_sums(z.double(), y)
    for chunk in [1, 6, None]:
        _close(_ce(z, y, chunk), ref, rtol=1e-6)
        _close(_ce(z.double(), y, chunk), ref, rtol=1e-11)  # an offset of 1e4 costs ulp(1e4) = 2e-12 anywhere
    assert _ce(z[:1], y[:1])[0, 0].item() == pytest.approx(
        120.0 + math.log1p(math.exp(-120) + math.exp(-125)), rel=1e-6
    )


def test_a_lone_long_row_gets_the_digits_it_gets_among_others(kernel: str) -> None:
    """torch sums a lone row of >= 32768 elements on two threads; the kernel never lets that change digits."""
    gen = torch.Generator().manual_seed(20)
    z, y = torch.randn(3, 70000, generator=gen) * 3, torch.randint(0, 70000, (3,), generator=gen)
    together = _ce(z, y)
    alone = sum(_ce(z[i : i + 1], y[i : i + 1]) for i in range(3))
    torch.testing.assert_close(alone, together, rtol=1e-15, atol=0)
    _close(together, _np_ce_sums(z.double(), y), rtol=1e-6)


def test_float32_error_is_no_worse_than_torch_cross_entropy(kernel: str) -> None:
    gen = torch.Generator().manual_seed(8)
    z, y = torch.randn(2048, 500, generator=gen) * 3, torch.randint(0, 500, (2048,), generator=gen)
    exact = _np_ce_sums(z.double(), y)[0].sum()
    ours = _ce(z, y, 1 << 14)[0].sum().item()
    torch_sum = F.cross_entropy(z, y, reduction="sum").item()
    assert abs(ours - exact) <= max(abs(torch_sum - exact), 1e-9 * exact)


# --------------------------------------------------------------------- binary / multilabel kernels
@pytest.mark.parametrize("target_dtype", [torch.int64, torch.bool, torch.float32, torch.float64])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bce_sums_match_float64_reference_for_every_block_size(target_dtype, dtype) -> None:
    gen = torch.Generator().manual_seed(9)
    z = (torch.randn(67, 4, generator=gen, dtype=torch.float64) * 6).to(dtype)
    y = (torch.rand(67, 4, generator=gen) < 0.4).to(target_dtype)
    w = torch.rand(67, generator=gen, dtype=torch.float64)
    ref, ref_w = _np_bce_sums(z.double(), y.double()), _np_bce_sums(z.double(), y.double(), w)
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    results = [_bce(z, y, chunk) for chunk in CHUNKS]
    for chunk, got in zip(CHUNKS, results, strict=True):
        _close(got, ref, rtol)
        _close(_bce(z, y, chunk, sample_weight=w), ref_w, rtol)
        # every element gets the same digits wherever it sits in a block, and is widened before any addition
        torch.testing.assert_close(got, results[-1], rtol=1e-13, atol=0)


def test_bce_is_exact_in_both_tails() -> None:
    """Confident correct predictions cost exp(-|z|), not 0 (softplus(z) - z would round it away)."""
    z = torch.tensor([[30.0, -30.0, 10.0, -10.0, 60.0, -60.0]]).repeat(40, 1)  # exp(-60): still a normal float32
    y = torch.tensor([[1, 0, 1, 0, 1, 0]]).repeat(40, 1)
    expected = 40 * np.log1p(np.exp(-np.abs(z[0].double().numpy())))
    for target in (y, y.float()):
        for chunk in [3, None]:
            _close(_bce(z, target, chunk)[0], expected, rtol=2e-6)
    _close(_bce(z.double(), y.double())[0], expected, rtol=1e-14)
    z64 = torch.tensor([[300.0, -300.0]], dtype=torch.float64).repeat(3, 1)
    _close(_bce(z64, torch.tensor([[1, 0]]).repeat(3, 1))[0], np.full(2, 3 * np.exp(-300.0)), rtol=1e-14)


@pytest.mark.parametrize("fmt", ["probs", "log_probs"])
def test_bce_probability_inputs_match_clipped_reference(fmt: str) -> None:
    gen = torch.Generator().manual_seed(10)
    p = torch.rand(50, 3, generator=gen, dtype=torch.float64)
    p[0, 0], p[1, 1] = 0.0, 1.0  # clipped to eps, 1 - eps as scikit-learn
    y = (torch.rand(50, 3, generator=gen) < 0.5).long()
    y[0, 0], y[1, 1] = 1, 0
    eps = np.finfo(np.float64).eps
    pc = np.clip(p.numpy(), eps, 1 - eps)
    loss = -(y.numpy() * np.log(pc) + (1 - y.numpy()) * np.log(1 - pc))
    preds = p if fmt == "probs" else torch.log(torch.from_numpy(pc))
    for target in (y, y.double()):
        for chunk in [1, 16, None]:
            _close(_bce(preds, target, chunk, input_format=fmt)[0], loss.sum(0), rtol=1e-12)


def test_bce_smoothing_ignore_and_pos_weight_do_not_depend_on_the_block_size() -> None:
    gen = torch.Generator().manual_seed(12)
    z = torch.randn(33, 3, 2, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, 2, (33, 3, 2), generator=gen)
    y[::5, 1] = -1
    w = torch.rand(33, generator=gen, dtype=torch.float64)
    cases = [
        {"ignore_index": -1, "label_smoothing": 0.2},
        {"ignore_index": -1, "sample_weight": w, "pos_weight": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)},
    ]
    for options in cases:
        results = [_bce(z, y, chunk, **options) for chunk in CHUNKS]
        for got in results:
            torch.testing.assert_close(got, results[-1], rtol=1e-13, atol=1e-13)
    # and against the reference: smoothing y' = 0.9 y + 0.05 on the kept entries only
    zl, yl = z.movedim(1, -1).reshape(-1, 3).numpy(), y.movedim(1, -1).reshape(-1, 3).numpy()
    keep = yl != -1
    ys = np.where(keep, yl, 0) * 0.8 + 0.1
    loss = ys * np.logaddexp(0, -zl) + (1 - ys) * np.logaddexp(0, zl)
    got = _bce(z, y, 5, ignore_index=-1, label_smoothing=0.2)
    _close(got[0], (loss * keep).sum(0), rtol=1e-12)
    _close(got[1], keep.sum(0), rtol=0)
    _close(got[2], (ys * keep).sum(0), rtol=1e-12)


def test_no_path_writes_into_its_inputs() -> None:
    gen = torch.Generator().manual_seed(19)
    z = torch.randn(23, 4, generator=gen, dtype=torch.float64)
    y, w, cw = torch.randint(0, 4, (23,), generator=gen), torch.rand(23, dtype=torch.float64), torch.rand(4).double()
    inputs = {
        "logits": z,
        "probs": torch.softmax(z, 1),
        "log_probs": torch.log_softmax(z, 1),
    }
    yl = (torch.rand(23, 4, generator=gen) < 0.5).double()
    for fmt, preds in inputs.items():
        before = [t.clone() for t in (preds, y, w, cw, yl)]
        for chunk in [5, None]:
            _ce(preds, y, chunk, input_format=fmt, sample_weight=w, class_weight=cw, label_smoothing=0.1)
            _ce(preds, torch.softmax(z, 1), chunk, input_format=fmt, sample_weight=w, class_weight=cw)
            p = torch.sigmoid(z) if fmt == "probs" else (F.logsigmoid(z) if fmt == "log_probs" else z)
            _bce(p, yl, chunk, input_format=fmt, sample_weight=w, label_smoothing=0.1)
        for old, new in zip(before, (preds, y, w, cw, yl), strict=True):
            assert torch.equal(old, new)


# --------------------------------------------------------------------------------- autograd, dtypes
def test_gradients_flow_through_the_chunked_kernels() -> None:
    gen = torch.Generator().manual_seed(13)
    z = torch.randn(20, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (20,), generator=gen)
    _ce(z, y, 8)[0].sum().backward()
    expected = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), z)[0]
    torch.testing.assert_close(z.grad, expected, rtol=1e-12, atol=1e-14)
    zb = z.detach().clone().requires_grad_()
    yb = (torch.rand(20, 4, generator=gen) < 0.5).double()
    _bce(zb, yb, 8)[0].sum().backward()
    expected = torch.autograd.grad(F.binary_cross_entropy_with_logits(zb, yb, reduction="sum"), zb)[0]
    torch.testing.assert_close(zb.grad, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("classes", [6, 40, 300])  # padded, plain log-softmax, unshifted kernels
def test_autograd_and_buffered_kernels_give_the_same_digits(classes: int) -> None:
    gen = torch.Generator().manual_seed(21)
    z = torch.randn(37, classes, generator=gen) * 3
    z[0, 0] = 200.0  # one row through the shifted fallback
    y = torch.randint(0, classes, (37,), generator=gen)
    plain = _ce(z, y, 7 * classes)
    tracked = _ce(z.clone().requires_grad_(), y, 7 * classes)
    assert tracked.requires_grad
    torch.testing.assert_close(tracked.detach(), plain, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(dtype) -> None:
    gen = torch.Generator().manual_seed(14)
    z = (torch.randn(30, 5, generator=gen) * 3).to(dtype)
    y = torch.randint(0, 5, (30,), generator=gen)
    for chunk in [7, None]:
        _close(_ce(z, y, chunk), _np_ce_sums(z.double(), y), rtol=1e-6)
        yl = (torch.rand(30, 5, generator=gen) < 0.5).long()
        _close(_bce(z, yl, chunk), _np_bce_sums(z.double(), yl), rtol=1e-6)


class _OpsAndLargest(TorchDispatchMode):
    """Count the dispatched aten ops and the elements of the largest tensor any of them returns."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self.largest = max([self.largest, *(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))])
        return out


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"ignore_index": 1}], ids=["plain", "ls", "ii"])
def test_default_block_size_is_read_at_call_time_and_bounds_every_temporary(
    monkeypatch: pytest.MonkeyPatch, options: dict
) -> None:
    """With 60-element blocks no op returns more than a block (the control: one block returns the whole input),
    and the ops per block are a fixed number, none per row; the sums match the float64 reference."""
    gen = torch.Generator().manual_seed(15)
    z, y = torch.randn(40, 20, generator=gen, dtype=torch.float64), torch.randint(0, 20, (40,), generator=gen)
    ref = _np_ce_sums(z, y, smoothing=options.get("label_smoothing", 0.0), ignore=options.get("ignore_index"))
    with _OpsAndLargest() as whole:
        _close(_ce(z, y, **options), ref, rtol=1e-12)
    assert whole.largest >= z.numel()  # the control: the default block holds the whole batch
    monkeypatch.setattr(_chunks, "CHUNK_ELEMENTS", 60)
    blocks = len(list(row_slices(40, 20)))
    assert blocks == 14
    with _OpsAndLargest() as blocked:
        _close(_ce(z, y, **options), ref, rtol=1e-12)
    assert blocked.largest <= 60 < z.numel(), blocked.largest
    assert blocked.ops <= 40 * blocks, blocked.ops  # about 22 to 35 per 3-row block


# ------------------------------------------------------------------------------------- fused path
@pytest.mark.slow
def test_fused_kernel_matches_eager_and_compiles_once() -> None:
    pytest.importorskip("torch._inductor")
    from torch._dynamo.utils import counters

    gen = torch.Generator().manual_seed(17)
    c = 12
    blocks = softmax_plan(torch.zeros(40, c), 16 * c, soft=False, gather=False, fused=True, plain=False, work=False)
    assert [(s.start, s.stop) for s in blocks.fused] == [(0, 16), (16, 32)]
    counters.clear()
    for n in (16 * 5 + 3, 16 * 2, 16 * 3 + 15):  # full blocks plus ragged tails of several sizes
        z = torch.randn(n, c, generator=gen) * 4
        z[1, 2], z[17, :] = 200.0, -90.0  # an overflowing and an underflowing row: recomputed with the shift
        y = torch.randint(0, c, (n,), generator=gen)
        w = torch.rand(n, generator=gen, dtype=torch.float64)
        for options in ({}, {"sample_weight": w, "ignore_index": 3}):
            fused = _ce(z, y, 16 * c, fused=True, **options)
            ref = _np_ce_sums(z.double(), y, w=options.get("sample_weight"), ignore=options.get("ignore_index"))
            _close(fused, ref, rtol=2e-6)
    assert counters["stats"]["unique_graphs"] <= 1, dict(counters["stats"])


def test_fused_is_ignored_where_it_does_not_apply() -> None:
    gen = torch.Generator().manual_seed(18)
    p = torch.softmax(torch.randn(10, 3, generator=gen, dtype=torch.float64), 1)
    y = torch.randint(0, 3, (10,), generator=gen)
    for options in ({"input_format": "probs"}, {"label_smoothing": 0.1}):
        torch.testing.assert_close(_ce(p, y, 4, fused=True, **options), _ce(p, y, 4, **options), rtol=0, atol=0)
    assert math.isfinite(_ce(p.log().requires_grad_(), y, 4, fused=True)[0].sum().item())
