"""The hidden-state kernel's blocks of tokens by vocabulary rows: values on uneven grids, exactness, ops on ``meta``.

Small forced blocks (``block_size`` for tokens, the plan's vocabulary-row constants monkeypatched) split the
tokens and the vocabulary unevenly: a ragged last vocabulary block holding true classes, ignored tokens, zero
weights. Expected values come from ``F.cross_entropy`` on float64 logits computed in float64, or from exact
float64 sums of exponentials for confident rows (margins to 700 nats).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_gpu_ready import _OpCounter

from xent_metrics.functional import _chunks, _head_ce, linear_cross_entropy
from xent_metrics.functional.linear import HeadTask

V, D = 37, 5


def _batch(n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(n, D, generator=g, dtype=torch.float64) * 1.3 + 0.3).to(dtype)
    head = (torch.randn(V, D, generator=g, dtype=torch.float64) * 0.7).to(dtype)
    bias = (torch.randn(V, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    target = torch.randint(0, V, (n,), generator=g)
    target[::4] = V - 1  # the last, ragged vocabulary block holds true classes
    target[1::7] = -100
    sample = torch.rand(n, generator=g, dtype=torch.float64)
    sample[2::5] = 0.0
    return hidden, head, bias, target, sample


def _reference(hidden, head, bias, target, sample, class_weight, smoothing, average):  # type: ignore[no-untyped-def]
    """torch.nn.functional in float64 on the float64 logits of the given values."""
    logits = F.linear(hidden.double(), head.double(), None if bias is None else bias.double())
    loss = F.cross_entropy(
        logits, target, weight=class_weight, ignore_index=-100, label_smoothing=smoothing, reduction="none"
    )
    keep = (target != -100).double()
    cw = torch.ones(V, dtype=torch.float64) if class_weight is None else class_weight
    denom = sample * cw[target.clamp(min=0)] * keep
    num = sample * loss * keep
    if average == "micro":
        return num.sum() / denom.sum()
    cls = target.clamp(min=0)
    per = torch.zeros(V, dtype=torch.float64).index_add_(0, cls, num)
    return per / torch.zeros(V, dtype=torch.float64).index_add_(0, cls, denom)


@pytest.fixture
def uneven_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 8 vocabulary rows on the CPU and off it: 37 = 4 x 8 + 5."""
    monkeypatch.setattr(_chunks, "HEAD_VOCAB_ROWS", 8)
    monkeypatch.setattr(_chunks, "HEAD_DEVICE_VOCAB_ROWS", 8)


@pytest.mark.usefixtures("uneven_vocabulary")
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 2e-6), (torch.bfloat16, 2e-6)])
@pytest.mark.parametrize(("smoothing", "weighted", "bias"), [(0.0, False, False), (0.3, True, True), (0.0, True, True)])
def test_uneven_grids_match_float64_torch(
    dtype: torch.dtype, rtol: float, smoothing: float, weighted: bool, bias: bool
) -> None:
    hidden, head, head_bias, target, sample = _batch(43, dtype, seed=1)
    class_weight = torch.linspace(0.3, 2.1, V, dtype=torch.float64) if weighted else None
    for average in ("micro", "none"):
        given_bias = head_bias if bias else None
        expected = _reference(hidden, head, given_bias, target, sample, class_weight, smoothing, average)
        for block in (5, 16, 43):
            got = linear_cross_entropy(
                hidden, head, target, linear_bias=head_bias if bias else None, weight=class_weight,
                sample_weight=sample, ignore_index=-100, label_smoothing=smoothing, average=average, block_size=block,
            )  # fmt: skip
            torch.testing.assert_close(got, expected, rtol=rtol, atol=0.0, equal_nan=True)


@pytest.mark.usefixtures("uneven_vocabulary")
def test_a_fixed_plan_gives_the_same_bits_and_another_plan_only_rounding() -> None:
    hidden, head, bias, target, _ = _batch(97, torch.float32, seed=2)

    def call(block: int) -> torch.Tensor:
        return linear_cross_entropy(hidden, head, target, linear_bias=bias, ignore_index=-100, block_size=block)

    assert torch.equal(call(7), call(7))
    torch.testing.assert_close(call(7), call(97), rtol=1e-6, atol=0.0)


def _confident(n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows whose true logit leads by 0.3 to 700 nats, through a one-hot head (each logit exact in float32)."""
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, V, (n,), generator=g)
    target[:3] = V - 1
    hidden = torch.randint(-20, 20, (n, V), generator=g).to(torch.float64) / 64  # on a grid: exact sums
    margins = torch.tensor([0.3, 20.25, 87.5, 88.75, 120.5, 300.0, 555.75, 700.0])[torch.arange(n) % 8]
    hidden[torch.arange(n), target] = hidden.max(1).values + margins
    head = torch.eye(V, dtype=torch.float64)
    return hidden.to(dtype), head.to(dtype), target, hidden


def _exact_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log1p(sum_{j != t} exp(z_j - z_t))`` in float64: exact for these logits (differences of grid values)."""
    diffs = logits - logits.gather(1, target[:, None])
    return diffs.exp().scatter(1, target[:, None], 0.0).sum(1).log1p()


@pytest.mark.usefixtures("uneven_vocabulary")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_confident_rows_are_exact_at_margins_to_700_nats(dtype: torch.dtype) -> None:
    """On the CPU rows past float32's exp range take the float64 form; every token's loss stays relative-exact."""
    hidden, head, target, exact_logits = _confident(40, dtype)
    want = _exact_nll(exact_logits, target)
    got = linear_cross_entropy(hidden, head, target, average="none", block_size=6)
    per_class = torch.zeros(V, dtype=torch.float64).index_add_(0, target, want)
    per_class /= torch.zeros(V, dtype=torch.float64).index_add_(0, target, torch.ones(40, dtype=torch.float64))
    torch.testing.assert_close(got, per_class, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0.0, equal_nan=True)
    assert bool((got[~got.isnan()] > 0).all())


@pytest.mark.usefixtures("uneven_vocabulary")
def test_the_float64_form_of_other_devices_is_exact_on_cpu_tensors() -> None:
    """The form every non-CPU device runs, on CPU tensors: each token's loss against exact float64 sums."""
    hidden, head, target, exact_logits = _confident(40, torch.float32)
    plan = _chunks.head_plan(hidden, head, None, 40, 6)
    loss, true = _head_ce._wide_nll(_head_ce._Tokens(hidden, None, target), head, None, plan)
    torch.testing.assert_close(loss, _exact_nll(exact_logits, target), rtol=1e-13, atol=0.0)
    assert torch.equal(true, exact_logits.gather(1, target[:, None]).squeeze(1))


def _meta_counts(tokens: int, vocab: int, dim: int, block: int, **options: object) -> tuple[int, int]:
    """Ops of the kernel step (``HeadTask.sums``) and of the whole function on a meta batch."""
    meta = {"device": "meta"}
    hidden, head, target = (
        torch.empty(tokens, dim, **meta),
        torch.empty(vocab, dim, **meta),
        torch.empty(tokens, dtype=torch.long, **meta),
    )
    bias = torch.empty(vocab, **meta) if options.pop("bias", False) else None
    task = HeadTask(ignore_index=-100, validate_args=False, block_size=block, **options)  # type: ignore[arg-type]
    batch = task.check_batch(hidden, head, target, bias, None)
    with _OpCounter() as kernel:
        task.sums(batch)
    with _OpCounter() as whole:
        linear_cross_entropy(
            hidden, head, target, linear_bias=bias, ignore_index=-100, validate_args=False, block_size=block,
            **options,  # type: ignore[arg-type]
        )  # fmt: skip
    assert not (set(kernel.ops) | set(whole.ops)) & _OpCounter.READS, whole.ops
    return len(kernel.ops), len(whole.ops)


@pytest.mark.parametrize("bias", [False, True])
def test_ops_on_meta_depend_only_on_the_block_grid(monkeypatch: pytest.MonkeyPatch, bias: bool) -> None:
    """At most 30 per call plus 12 per (token block, vocabulary block) pair, for grids even and ragged.

    The bound holds for the whole function (its checks of shapes and the value from sums included); the
    kernel step (``HeadTask.sums``) is most of it. The same grid over other sizes dispatches the same ops.
    """
    grids = {}
    cases = [(1024, 32000, 256, 8000), (1000, 5000, 300, 1200), (1024, 32000, 1024, 32000), (700, 4000, 700, 1000)]
    for tokens, vocab, block, rows in [*cases, (1000, 5000, 1000, 5000), (600, 3000, 200, 3000)]:
        monkeypatch.setattr(_chunks, "HEAD_DEVICE_VOCAB_ROWS", rows)
        pairs = math.ceil(tokens / block) * math.ceil(vocab / rows)
        kernel, whole = _meta_counts(tokens, vocab, 64, block, bias=bias)
        assert whole <= 30 + 12 * pairs, (tokens, vocab, block, rows, whole)
        assert kernel < whole <= kernel + 8
        grids[(tokens, vocab, block, rows)] = (kernel, whole)
    monkeypatch.setattr(_chunks, "HEAD_DEVICE_VOCAB_ROWS", 2000)
    assert _meta_counts(2048, 8000, 32, 512, bias=bias) == _meta_counts(4096, 8000, 128, 1024, bias=bias)  # 4 x 4
    assert grids[(1024, 32000, 1024, 32000)] == grids[(1000, 5000, 1000, 5000)]  # one block each


def test_smoothing_on_meta_adds_a_fixed_number_of_ops_per_token_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chunks, "HEAD_DEVICE_VOCAB_ROWS", 2000)
    small = _meta_counts(2048, 8000, 32, 512, label_smoothing=0.1)
    assert small == _meta_counts(4096, 8000, 128, 1024, label_smoothing=0.1)
    assert small[0] <= 30 + 12 * 16 + 5 * (4 + 4)
