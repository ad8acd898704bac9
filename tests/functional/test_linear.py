"""``linear_cross_entropy``: every option against torch.nn.functional in float64, blocks, gradients, errors."""

from __future__ import annotations

import itertools
import math
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from xent_metrics.functional import _chunks, _head_ce, linear_cross_entropy

V, D = 37, 6


def _data(dtype: torch.dtype = torch.float64, shape: tuple[int, ...] = (3, 11), seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, V, shape, generator=g)
    target[torch.rand(shape, generator=g) < 0.25] = -100
    target.view(-1)[0] = -100
    return {
        "hidden": (torch.randn(*shape, D, generator=g, dtype=torch.float64) * 1.3).to(dtype),
        "linear_weight": (torch.randn(V, D, generator=g, dtype=torch.float64) * 0.7).to(dtype),
        "linear_bias": (torch.randn(V, generator=g, dtype=torch.float64) * 0.3).to(dtype),
        "target": target,
        "token_weight": torch.rand(shape, generator=g, dtype=torch.float64).to(dtype),
        "class_weight": (torch.rand(V, generator=g, dtype=torch.float64) + 0.3).to(dtype),
    }


def _reference(
    data: dict, bias: bool, smoothing: float, class_w: bool, sample: str | None, average: str
) -> torch.Tensor:
    """torch.nn.functional in float64 on the full logits: per-token losses, then the weighted means."""
    logits = F.linear(
        data["hidden"].double(), data["linear_weight"].double(), data["linear_bias"].double() if bias else None
    )
    logits, target = logits.reshape(-1, V), data["target"].reshape(-1)
    cw = data["class_weight"].double() if class_w else None
    loss = F.cross_entropy(logits, target, weight=cw, ignore_index=-100, label_smoothing=smoothing, reduction="none")
    keep = target != -100
    s = torch.ones_like(loss)
    if sample == "token":
        s = data["token_weight"].double().reshape(-1)
    elif sample == "sequence":
        s = data["token_weight"][:, :1].double().expand(data["target"].shape).reshape(-1)
    denom = s * (cw[target.clamp(min=0)] if class_w else 1.0) * keep
    num = s * loss * keep
    if average == "micro":
        return num.sum() / denom.sum()
    cls = target.clamp(min=0)
    per = torch.zeros(V, dtype=torch.float64).index_add_(0, cls, num) / torch.zeros(V, dtype=torch.float64).index_add_(
        0, cls, denom
    )
    return per if average == "none" else per[~per.isnan()].mean()


def _kwargs(data: dict, bias: bool, smoothing: float, class_w: bool, sample: str | None) -> dict:
    sw = {"token": data["token_weight"], "sequence": data["token_weight"][:, 0], None: None}[sample]
    return {
        "linear_bias": data["linear_bias"] if bias else None,
        "weight": data["class_weight"] if class_w else None,
        "sample_weight": sw,
        "label_smoothing": smoothing,
        "ignore_index": -100,
    }


@pytest.mark.parametrize(
    ("bias", "smoothing", "class_w", "sample"),
    list(itertools.product([False, True], [0.0, 0.3], [False, True], [None, "token", "sequence"])),
)
def test_float64_equals_the_full_logits_reference(
    bias: bool, smoothing: float, class_w: bool, sample: str | None
) -> None:
    data = _data()
    kwargs = _kwargs(data, bias, smoothing, class_w, sample)
    for average, block in (("micro", None), ("micro", 1), ("none", 7), ("macro", None)):
        expected = _reference(data, bias, smoothing, class_w, sample, average)
        with warnings.catch_warnings():  # macro: a warning names the classes that no kept token has
            warnings.filterwarnings("ignore", "average='macro' skipped", UserWarning)
            got = linear_cross_entropy(
                data["hidden"], data["linear_weight"], data["target"], average=average, block_size=block, **kwargs
            )
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0.0, equal_nan=True)


@pytest.mark.parametrize("layout", ["flat", "batched", "strided"])
def test_two_and_three_dimensional_hidden_states(layout: str) -> None:
    data = _data(shape=(40,) if layout == "flat" else (4, 10), seed=1)
    if layout == "strided":  # (B, L, d) that no view flattens: a GRU's batch_first output is laid out so
        data["hidden"] = data["hidden"].transpose(0, 1).contiguous().transpose(0, 1)
    expected = _reference(data, True, 0.0, False, None, "micro")
    for block in (None, 3):
        got = linear_cross_entropy(
            data["hidden"], data["linear_weight"], data["target"], linear_bias=data["linear_bias"], ignore_index=-100,
            block_size=block,
        )  # fmt: skip
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0.0)


def test_float32_within_1e5_of_float64_at_a_language_model_shape() -> None:
    g = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(300, 64, generator=g), torch.randn(5000, 64, generator=g) * 0.2
    bias, target = torch.randn(5000, generator=g) * 0.1, torch.randint(0, 5000, (300,), generator=g)
    expected = F.cross_entropy(F.linear(hidden.double(), weight.double(), bias.double()), target)
    for block in (None, 1, 13, 300):
        got = linear_cross_entropy(hidden, weight, target, linear_bias=bias, block_size=block)
        assert abs(got.item() - expected.item()) <= 1e-5 * expected.item()
    native = F.cross_entropy(F.linear(hidden, weight, bias), target)  # torch's own float32 path, for scale
    assert abs(native.item() - expected.item()) <= 1e-5 * expected.item()


def test_block_size_changes_only_the_matmul_rounding() -> None:
    """float64: blocks agree to 1e-13; float32: to float32 rounding of the logits; one block size: the same bits."""
    data = _data(shape=(97,), seed=4)
    args = (data["hidden"], data["linear_weight"], data["target"])
    values = [linear_cross_entropy(*args, ignore_index=-100, block_size=b) for b in (1, 5, 32, 97)]
    for value in values:
        torch.testing.assert_close(value, values[0], rtol=1e-13, atol=0.0)
    single = [
        linear_cross_entropy(
            *(a.float() if a.is_floating_point() else a for a in args), ignore_index=-100, block_size=b
        )
        for b in (1, 5, 32, 97, 5)
    ]
    for value in single:
        torch.testing.assert_close(value, single[0], rtol=1e-6, atol=0.0)
    assert torch.equal(single[1], single[4])


def test_the_default_block_is_a_memory_budget() -> None:
    """8 MiB of logits on the CPU: 512 float32 tokens (256 float64) by 4096 vocabulary rows; whole rows for autograd."""
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert _chunks.head_block_cols(32000, cpu) == 4096 and _chunks.head_block_cols(37, cpu) == 37
    assert _chunks.head_block_rows(4096, 4) == 512 and _chunks.head_block_rows(4096, 8) == 256
    assert _chunks.head_block_rows(4096, 4) * 4096 * 4 == _chunks.HEAD_BLOCK_BYTES == 8 << 20
    assert _chunks.head_block_rows(37, 4) == (8 << 20) // (37 * 4)
    assert _chunks.head_block_rows(4096, 4, block_size=8) == 8
    assert _chunks.head_block_cols(128256, meta) == 32768 and _chunks.head_block_rows(32768, 4, None, meta) == 4096
    assert _chunks.head_block_cols(128256, cpu, grad=True) == 128256


def test_the_head_plan_blocks_tokens_and_vocabulary_rows() -> None:
    """Tokens by vocabulary rows, the last of each ragged; a widened head block for half heads; float64 off the CPU."""
    hidden, head = torch.zeros(2000, 512), torch.zeros(32000, 512)
    plan = _chunks.head_plan(hidden, head, None, 1500, None)
    assert [(t.start, t.stop) for t in _head_ce._token_blocks(plan.step, 1500)] == [(0, 512), (512, 1024), (1024, 1500)]
    assert [(c.start, c.stop) for c in plan.cols] == [(s, s + 4096) for s in range(0, 28672, 4096)] + [(28672, 32000)]
    assert plan.logits is not None and plan.logits.shape == (512, 4096) and plan.head is None and plan.wide is None
    half = _chunks.head_plan(hidden.half(), head.half(), None, 150, 8)
    half_blocks = _head_ce._token_blocks(half.step, 150)
    assert half.step == 8 and half_blocks[-1] == slice(144, 150) and len(half_blocks) == 19
    assert half.dtype == torch.float32 and half.logits is not None and half.logits.shape == (8, 4096)
    assert half.head is not None and half.head.shape == (4096, 512) and half.head.dtype == torch.float32
    meta = _chunks.head_plan(hidden.to("meta"), head.to("meta"), None, 1500, None)
    assert meta.wide is not None and meta.wide.shape == (1500, 32000) and meta.wide.dtype == torch.float64
    assert meta.cols == (slice(0, 32000),)
    small = _chunks.head_plan(hidden[:, :6], head[:37, :6], None, 1500, None)
    assert _head_ce._token_blocks(small.step, 1500) == (slice(0, 1500),) and small.cols == (slice(0, 37),)


def test_ignored_tokens_are_never_projected(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(shape=(50,), seed=5)
    rows: list[int] = []
    project = _head_ce._project

    def counting(hidden: torch.Tensor, *args: object) -> torch.Tensor:
        rows.append(hidden.shape[0])
        return project(hidden, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_head_ce, "_project", counting)
    hidden = data["hidden"].clone()
    hidden[data["target"] == -100] = math.nan  # never read
    got = linear_cross_entropy(
        hidden, data["linear_weight"], data["target"], ignore_index=-100, validate_args=False, block_size=8
    )
    kept = int((data["target"] != -100).sum())
    assert sum(rows) == kept and max(rows) == 8
    torch.testing.assert_close(got, _reference(data, False, 0.0, False, None, "micro"), rtol=1e-12, atol=0.0)


def test_gradients_match_the_reference() -> None:
    data = _data(shape=(2, 9), seed=6)
    leaves = [data[k].clone().requires_grad_() for k in ("hidden", "linear_weight", "linear_bias")]
    got = linear_cross_entropy(
        leaves[0],
        leaves[1],
        data["target"],
        linear_bias=leaves[2],
        ignore_index=-100,
        label_smoothing=0.2,
        block_size=4,
    )
    got.backward()
    refs = [data[k].clone().requires_grad_() for k in ("hidden", "linear_weight", "linear_bias")]
    expected = F.cross_entropy(F.linear(*refs).reshape(-1, V), data["target"].reshape(-1), label_smoothing=0.2)
    expected.backward()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0.0)
    for leaf, ref in zip(leaves, refs, strict=True):
        torch.testing.assert_close(leaf.grad, ref.grad, rtol=1e-10, atol=1e-14)


def _given_values(data: dict) -> dict:
    """The half-precision operands' exact values in float64: the reference's inputs are the given values."""
    return {k: v.double() if v.is_floating_point() else v for k, v in data.items()}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("bias", "smoothing", "class_w", "sample"),
    [(True, 0.0, False, None), (False, 0.3, True, "token"), (True, 0.3, True, "sequence"), (True, 0.0, True, "token")],
)
def test_half_hidden_states_within_2e6_of_the_float64_loss_of_the_given_values(
    dtype: torch.dtype, bias: bool, smoothing: float, class_w: bool, sample: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float16 / bfloat16 operands give float32 logits: 2e-6 of the float64 loss of the given (half) values.

    A 5-element head block (so the 37 rows are widened in 8 GEMMs, the last one ragged) and the default one;
    torch's own half-precision projection, for scale, is off by far more (the bar is not loose).
    """
    data = _data(dtype=dtype, shape=(6, 11), seed=8)
    kwargs = _kwargs(data, bias, smoothing, class_w, sample)
    for elements in (5 * D, None):
        if elements is not None:
            monkeypatch.setattr(_chunks, "CHUNK_ELEMENTS", elements)
        for average, block in (("micro", None), ("micro", 7), ("none", 5), ("macro", None)):
            expected = _reference(_given_values(data), bias, smoothing, class_w, sample, average)
            with warnings.catch_warnings():  # macro: a warning names the classes that no kept token has
                warnings.filterwarnings("ignore", "average='macro' skipped", UserWarning)
                got = linear_cross_entropy(
                    data["hidden"], data["linear_weight"], data["target"], average=average, block_size=block, **kwargs
                )
            torch.testing.assert_close(got, expected, rtol=2e-6, atol=0.0, equal_nan=True)
        monkeypatch.undo()
    given, keep = _given_values(data), data["target"].reshape(-1) != -100
    native = F.linear(data["hidden"], data["linear_weight"]).float().reshape(-1, V)[keep]  # torch's half logits
    exact = F.linear(given["hidden"], given["linear_weight"]).reshape(-1, V)[keep]
    target = data["target"].reshape(-1)[keep]
    per_token = F.cross_entropy(native.double(), target, reduction="none")
    want = F.cross_entropy(exact, target, reduction="none")
    assert ((per_token - want).abs() / want).max() > 20 * 2e-6  # half-precision logits miss the bar by far


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_hidden_states_under_autograd(dtype: torch.dtype) -> None:
    """Under autograd the same float32 logits (the head widened once): the value within 2e-6, gradients flow."""
    data = _data(dtype=dtype, shape=(2, 9), seed=9)
    leaves = [data[k].clone().requires_grad_() for k in ("hidden", "linear_weight", "linear_bias")]
    got = linear_cross_entropy(
        leaves[0], leaves[1], data["target"], linear_bias=leaves[2], ignore_index=-100, label_smoothing=0.2,
        block_size=4,
    )  # fmt: skip
    got.backward()
    refs = [data[k].double().requires_grad_() for k in ("hidden", "linear_weight", "linear_bias")]
    expected = F.cross_entropy(
        F.linear(*refs).reshape(-1, V), data["target"].reshape(-1), ignore_index=-100, label_smoothing=0.2
    )
    expected.backward()
    torch.testing.assert_close(got, expected, rtol=2e-6, atol=0.0)
    for leaf, ref in zip(leaves, refs, strict=True):
        assert leaf.grad is not None and leaf.grad.dtype == dtype
        torch.testing.assert_close(leaf.grad.double(), ref.grad, rtol=2e-2, atol=1e-3)  # half-precision gradients


def test_no_tokens_left_gives_nan_with_a_warning() -> None:
    data = _data(shape=(5,))
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        value = linear_cross_entropy(data["hidden"], data["linear_weight"], torch.full((5,), -100), ignore_index=-100)
    assert value.isnan()
    with pytest.warns(UserWarning, match="No samples with non-zero weight"):
        empty = torch.zeros(0, D, dtype=torch.float64)
        assert linear_cross_entropy(empty, data["linear_weight"], torch.zeros(0, dtype=torch.long)).isnan()


H, W, T = torch.zeros(4, 3), torch.zeros(5, 3), torch.tensor([0, 1, 4, 2])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((H.long(), W, T), {}, TypeError, r"`hidden` must be a floating point tensor .* got torch.int64"),
        ((H[0], W, T), {}, ValueError, r"`hidden` must have shape \(N, d\) or \(B, L, d\), features last, got \(3,\)"),
        ([H.tolist(), W, T], {}, TypeError, r"`hidden` must be a torch.Tensor, got list"),
        (
            (H, W, T[:3]),
            {},
            ValueError,
            r"`target` must hold one class index per row of `hidden`, shape \(4,\) .*got \(3,\)",
        ),
        ((H, W, T.float()), {}, TypeError, r"`target` must hold integer class indices, got dtype torch.float32"),
        ((H, W, T.bool()), {}, TypeError, r"`target` must hold integer class indices, got dtype torch.bool"),
        ((H, W.double(), T), {}, TypeError, r"`linear_weight` has dtype torch.float64 but `hidden` has torch.float32"),
        ((H, W[:, :2], T), {}, ValueError, r"`linear_weight` must have shape \(V, 3\): .* got \(5, 2\)"),
        ((H, W[:1], T), {}, ValueError, r"`linear_weight` must have shape \(V, 3\): V >= 2 .* got \(1, 3\)"),
        (
            (H, W, T),
            {"linear_bias": torch.zeros(4)},
            ValueError,
            r"`linear_bias` must have shape \(5,\), .* got \(4,\)",
        ),
        ((H, W, T), {"linear_bias": torch.zeros(5, dtype=torch.float16)}, TypeError, r"`linear_bias` has dtype"),
        ((H, W, T + 1), {}, ValueError, r"`target` class indices must lie in \[0, 4\], got values in \[1, 5\]"),
        ((H, W, T - 1), {"ignore_index": -100}, ValueError, r"must lie in \[0, 4\] or ignore_index=-100, got .*-1"),
        ((H + math.inf, W, T), {}, ValueError, r"`hidden` contains NaN or inf \(12 of 12"),
        ((H, W * math.nan, T), {}, ValueError, r"`linear_weight` contains NaN or inf \(15 of 15"),
        ((H, W, T), {"linear_bias": torch.full((5,), math.nan)}, ValueError, r"`linear_bias` contains NaN or inf"),
        (
            (H, W, T),
            {"sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(4,\), got \(3,\)",
        ),
        ((H, W, T), {"sample_weight": -torch.ones(4)}, ValueError, r"`sample_weight` must be non-negative"),
        ((H, W, T), {"weight": torch.ones(4)}, ValueError, r"`weight` must have shape \(5,\), one value per class"),
        ((H, W, T), {"weight": torch.zeros(5)}, ValueError, r"`weight` is zero everywhere"),
        ((H, W, T), {"average": "weighted"}, ValueError, r"`average` must be one of \['micro', 'macro', 'none'\]"),
        ((H, W, T), {"label_smoothing": 1.0}, ValueError, r"`label_smoothing` must be in \[0, 1\), got 1.0"),
        ((H, W, T), {"ignore_index": 0.5}, TypeError, r"`ignore_index` must be an int or None, got float 0.5"),
        ((H, W, T), {"validate_args": 1}, TypeError, r"`validate_args` must be a bool, got int 1"),
        ((H, W, T), {"block_size": 0}, ValueError, r"`block_size` must be a positive int, got 0"),
        ((H, W, T), {"block_size": 2.0}, TypeError, r"`block_size` must be an int or None, got float"),
        ((H, W, T.to(torch.uint8)), {"ignore_index": -100}, ValueError, r"`ignore_index`=-100 does not fit"),
        ((H, W, T.to("meta")), {}, ValueError, r"`target` is on the meta device"),
    ],
)
def test_errors_name_the_argument(args: tuple, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        linear_cross_entropy(*args, **kwargs)


def test_values_are_not_read_without_validate_args() -> None:
    # not the ValueError of validation, and no warning either: that would read the weight total back
    value = linear_cross_entropy(H, W, T, sample_weight=torch.zeros(4), validate_args=False)
    assert value.isnan()


def test_module_exports() -> None:
    import xent_metrics.functional as functional

    assert "linear_cross_entropy" in functional.__all__ and functional.linear_cross_entropy is linear_cross_entropy


def test_the_head_kernel_returns_totals_when_asked_for_any_options_object() -> None:
    """``per_class=False``: the (3, 1) totals, from the kernel itself; the options are read by attribute only."""
    from xent_metrics.functional._head_ce import linear_sums

    gen = torch.Generator().manual_seed(12)
    hidden = torch.randn(3, 7, 6, generator=gen, dtype=torch.float64)
    head = torch.randn(11, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 11, (21,), generator=gen)
    target[::4] = -100
    options = SimpleNamespace(weight=None, ignore_index=-100, label_smoothing=0.0, validate_args=False)
    per_class = linear_sums(hidden, head, target, None, None, options, 4)
    totals = linear_sums(hidden, head, target, None, None, options, 4, per_class=False)
    assert per_class.shape == (3, 11) and totals.shape == (3, 1)
    loss = F.cross_entropy(F.linear(hidden.reshape(-1, 6), head), target, ignore_index=-100, reduction="sum")
    kept = float((target != -100).sum())
    expected = torch.tensor([loss.item(), kept, kept], dtype=torch.float64)
    torch.testing.assert_close(totals[:, 0], expected, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(totals, per_class.sum(1, keepdim=True), rtol=0, atol=0)
