"""The Metric contract: errors name the argument, rejected updates change nothing, no host sync
without validation, float64 states (with the MPS fallback), input dtypes, checkpoint checks."""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections.abc import Callable

import pytest
import torch
from helpers import cases
from torch.overrides import TorchFunctionMode
from torchmetrics import Metric

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)
from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy
from xent_metrics.functional._chunks import CPU_READS
from xent_metrics.metrics import _state, _torchmetrics

# Per class: a factory, a valid batch and bad batches (each must be rejected).
Batch = tuple[torch.Tensor, ...]


def _good(kind: str) -> Batch:
    g = torch.Generator().manual_seed(7)
    return cases.batch(kind, 2, 5, generator=g) if kind == "lm" else cases.batch(kind, 6, 3, generator=g)


def _bad(kind: str) -> list[tuple[Batch, type[Exception], str]]:
    preds, target = _good(kind)
    nan_preds = preds.clone()
    nan_preds.view(-1)[0] = float("nan")
    out_of_range = target.clone()
    out_of_range.view(-1)[0] = 7
    return [
        ((nan_preds, target), ValueError, "NaN or inf"),
        ((preds, out_of_range), ValueError, "target"),
        ((preds[:-1], target), ValueError, "shape"),
        ((preds.long(), target), TypeError, "floating point"),
        ((preds, target, -torch.ones(target.shape[0])), ValueError, "non-negative"),
        (([0.5], target), TypeError, "torch.Tensor"),
    ]


FACTORIES: dict[str, tuple[str, Callable[..., Metric]]] = {
    name: (cases.kind(name), functools.partial(cases.make, name)) for name in cases.NAMES
}
NAMES = sorted(FACTORIES)


def _recorded(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught]


# ---------------------------------------------------------------------------------- rejected updates
@pytest.mark.parametrize("name", NAMES)
def test_rejected_update_changes_nothing(name: str) -> None:
    kind, make = FACTORIES[name]
    metric = make()
    metric.update(*_good(kind))
    before, count = metric.sums.clone(), metric.update_count
    value = metric.compute()
    for args, error, match in _bad(kind):
        with pytest.raises(error, match=match):
            metric.update(*args)
        with pytest.raises(error, match=match):
            metric(*args)  # forward too
        assert torch.equal(metric.sums, before)
        assert metric.update_count == count
    assert torch.equal(metric.compute(), value)


@pytest.mark.parametrize("name", NAMES)
def test_rejected_update_then_compute_is_as_if_never_called(name: str) -> None:
    kind, make = FACTORIES[name]
    fresh, rejected = make(), make()
    (args, error, match), *_ = _bad(kind)
    with pytest.raises(error, match=match):
        rejected.update(*args)
    assert rejected.update_count == 0
    assert torch.equal(rejected.sums, fresh.sums)
    # exactly one warning (ours, no torchmetrics "compute before update"), and nan, in both cases
    for metric in (fresh, rejected):
        value, messages = _recorded(metric.compute)
        assert math.isnan(value.item())
        assert len(messages) == 1
        assert "No samples with non-zero weight" in messages[0]


# ------------------------------------------------------------------------------------ no host sync
def _in_declared_cpu_read() -> bool:
    """Whether the caller is a declared CPU-only read (``_chunks.cpu_read``) of CPU tensors: a memory read there.

    Known by the declaration, not by file: any other read in any kernel is reported.
    """
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in CPU_READS:
            tensors = [v for v in frame.f_locals.values() if isinstance(v, torch.Tensor)]
            return bool(tensors) and all(t.device.type == "cpu" for t in tensors)
        frame = frame.f_back
    return False


class _HostSyncSpy(TorchFunctionMode):
    """Record torch calls that copy a value to the host (or need a data-dependent shape)."""

    SYNCING = frozenset({"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy", "nonzero"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", str(func))
        if name in self.SYNCING or name in ("masked_select", "unique"):
            self.calls.append(name if not _in_declared_cpu_read() else "declared cpu read")
        if name == "__getitem__" and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool:
            self.calls.append("boolean indexing")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", NAMES)
def test_validate_args_false_update_reads_no_tensor_value(name: str) -> None:
    kind, make = FACTORIES[name]
    preds, target = _good(kind)
    if kind != "multilabel":
        target = target.clone()
        target.view(-1)[0] = -100
    weight = torch.rand(preds.shape[0])
    fast, checked = make(ignore_index=-100, validate_args=False), make(ignore_index=-100)
    with _HostSyncSpy() as spy:
        fast.update(preds, target, weight)
    assert set(spy.calls) <= {"declared cpu read"}  # on the CPU the kernels read their range checks from memory
    with _HostSyncSpy() as spy:
        checked.update(preds, target, weight)
    assert spy.calls  # the spy does see the value checks
    assert torch.equal(fast.sums, checked.sums)


# ------------------------------------------------------------------------------------ dtypes, devices
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_input_dtypes_accumulate_in_float64(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(64, 4, generator=g) * 3).to(dtype)
    target = torch.randint(0, 4, (64,), generator=g)
    metric = MulticlassCrossEntropy(4)
    metric.update(logits[:40], target[:40])
    metric.update(logits[40:], target[40:])
    assert metric.sums.dtype == torch.float64
    # the same numbers as the functional form on the same (rounded) inputs, and the float64 value within rounding
    torch.testing.assert_close(metric.compute(), multiclass_cross_entropy(logits, target), rtol=1e-12, atol=0)
    exact = torch.nn.functional.cross_entropy(logits.double(), target).item()
    assert metric.compute().item() == pytest.approx(exact, rel=1e-5 if dtype != torch.float64 else 1e-12)


def test_state_falls_back_to_float32_where_float64_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_state, "_float64_supported", lambda device: False)
    with pytest.warns(UserWarning, match=r"does not support float64: the metric sums fall back to float32"):
        metric = BinaryCrossEntropy(pos_weight=2.0)
    assert metric.sums.dtype == torch.float32
    assert metric.pos_weight.dtype == torch.float32
    preds, target = _good("binary")
    metric.update(preds, target)
    assert metric.sums.dtype == torch.float32
    expected = binary_cross_entropy(preds, target, pos_weight=2.0)
    torch.testing.assert_close(metric.compute().double(), expected, rtol=1e-6, atol=0)
    metric.to("cpu")  # same device: no new warning, dtype kept
    assert metric.sums.dtype == torch.float32


def test_inputs_on_another_device_are_refused_before_any_change() -> None:
    metric = MulticlassCrossEntropy(3)
    with pytest.raises(ValueError, match=r"`preds` is on device meta but the metric state is on cpu; move the metric"):
        metric.update(torch.empty(4, 3, device="meta"), torch.empty(4, dtype=torch.long, device="meta"))
    assert metric.update_count == 0


def test_fixed_weights_follow_to_device_and_keep_float64() -> None:
    metric = MulticlassCrossEntropy(3, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert metric.weight.dtype == torch.float64
    metric.to(torch.float16)
    assert metric.weight.dtype == torch.float64
    assert metric.to("cpu").weight.device.type == "cpu"


# ---------------------------------------------------------------------------------- checkpoint checks
def test_load_state_dict_refuses_other_shapes_and_restores_float64() -> None:
    source = MultilabelCrossEntropy(4)
    source.update(torch.randn(5, 4), torch.randint(0, 2, (5, 4)))
    target = MultilabelCrossEntropy(3)
    with pytest.raises(ValueError, match=r"`state_dict\['sums'\]` holds the sums of .*num_labels=4.*sums \(3, 4\)"):
        target.load_state_dict(source.state_dict())
    with pytest.raises(ValueError, match=r"`state_dict\['sums'\]` must be a floating tensor of shape \(3, 3\)"):
        target.load_state_dict({"sums": source.sums})  # saved without a layout: taken on its shape
    with pytest.raises(ValueError, match=r"got shape \(3, 4\) \(torch.int64\)"):
        MultilabelCrossEntropy(4).load_state_dict({"sums": torch.zeros(3, 4, dtype=torch.long)})
    resumed = MultilabelCrossEntropy(4)
    resumed.load_state_dict({"sums": source.sums.float()})
    assert resumed.sums.dtype == torch.float64
    torch.testing.assert_close(resumed.sums, source.sums.float().double(), rtol=0, atol=0)


# ------------------------------------------------------------------------------------ constructor args
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: MulticlassCrossEntropy(None), TypeError, r"`num_classes` must be a positive int \(it sizes"),
        (lambda: MultilabelCrossEntropy(2.0), TypeError, r"`num_labels` must be a positive int \(it sizes"),
        (lambda: MultilabelNormalizedEntropy(True), TypeError, r"`num_labels` must be a positive int"),
        (lambda: MulticlassNormalizedEntropy(0), ValueError, r"`num_classes` must be a positive int, got 0"),
        (lambda: BinaryCrossEntropy(validate_args="yes"), TypeError, r"`validate_args` must be a bool, got str"),
        (lambda: Perplexity(validate_args=1), TypeError, r"`validate_args` must be a bool, got int"),
        (lambda: BinaryNormalizedEntropy(input_format="logit"), ValueError, r"`input_format` must be one of"),
        (lambda: MultilabelCrossEntropy(2, average="weighted"), ValueError, r"`average` must be one of"),
        (lambda: Perplexity(ignore_index=1.5), TypeError, r"`ignore_index` must be an int or None"),
        (lambda: MulticlassCrossEntropy(3, label_smoothing=1.0), ValueError, r"`label_smoothing` must be in"),
        (lambda: MulticlassCrossEntropy(3, weight=torch.ones(4)), ValueError, r"`weight` must have shape \(3,\)"),
        (lambda: MulticlassCrossEntropy(3, weight=[1.0, 2.0, 3.0]), TypeError, r"`weight` must be a torch.Tensor"),
        (lambda: MultilabelCrossEntropy(2, pos_weight=-torch.ones(2)), ValueError, r"`pos_weight` must be non-neg"),
        (lambda: BinaryCrossEntropy(pos_weight=torch.ones(2)), ValueError, r"`pos_weight` for the binary task"),
        (lambda: BinaryCrossEntropy(pos_weight=float("nan")), ValueError, r"`pos_weight` contains NaN"),
    ],
)
def test_constructor_errors_name_the_argument(make: Callable[[], Metric], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long), ValueError, r"vocabulary last and V >= 2"),
        (torch.zeros(2, 3, 1), torch.zeros(2, 3, dtype=torch.long), ValueError, r"vocabulary last and V >= 2"),
        (torch.zeros(5), torch.zeros((), dtype=torch.long), ValueError, r"got preds \(5,\) and target \(\)"),
        (torch.zeros(2, 3, 5), torch.zeros(2, 3), TypeError, r"`target` must hold integer token ids, got dtype"),
        (torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.bool), TypeError, r"integer token ids"),
    ],
)
def test_perplexity_layout_errors(preds: torch.Tensor, target: torch.Tensor, error: type, match: str) -> None:
    metric = Perplexity()
    with pytest.raises(error, match=match):
        metric.update(preds, target)
    assert metric.update_count == 0


def test_perplexity_extreme_logits_are_finite_where_torchmetrics_gives_inf() -> None:
    from torchmetrics.text import Perplexity as TorchmetricsPerplexity

    logits = torch.zeros(2, 3, 10)
    logits[..., 0] = 120.0  # token 0 dominates; the targets below are other tokens, 120 nats behind
    target = torch.tensor([[1, 2, -100], [3, -100, -100]])
    ours = Perplexity(ignore_index=-100)(logits, target)
    torch.testing.assert_close(ours, torch.tensor(120.0, dtype=torch.float64).exp(), rtol=1e-12, atol=0)
    theirs = TorchmetricsPerplexity(ignore_index=-100)(logits, target)
    assert torch.isinf(theirs)


def test_forward_is_differentiable_and_the_state_is_not() -> None:
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (16,), generator=g)
    metric = MulticlassCrossEntropy(5, label_smoothing=0.1)
    metric(logits, target).backward()
    ours = logits.grad.clone()  # type: ignore[union-attr]
    logits.grad = None
    torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1).backward()
    torch.testing.assert_close(ours, logits.grad, rtol=1e-12, atol=1e-15)
    assert not metric.sums.requires_grad
    metric.update(logits, target)  # update builds no graph
    assert not metric.sums.requires_grad


def test_lean_sync_needs_torchmetrics_flags_and_falls_back_without_them() -> None:
    """``compute()`` replaces torchmetrics' sync only while its private flags say what they say in torchmetrics 1.x."""
    metric = MulticlassCrossEntropy(num_classes=3)
    metric.distributed_available_fn = lambda: True
    assert _torchmetrics.plain_sync(metric)
    metric.dist_sync_fn = lambda *args, **kwargs: None  # a user's own sync function: torchmetrics' path
    assert not _torchmetrics.plain_sync(metric)
    metric.dist_sync_fn = None
    for flag in ("_to_sync", "_should_unsync", "_is_synced", "_reductions"):
        renamed = MulticlassCrossEntropy(num_classes=3)
        renamed.distributed_available_fn = lambda: True
        del renamed.__dict__[flag]  # a torchmetrics release without it
        assert not _torchmetrics.plain_sync(renamed), flag
