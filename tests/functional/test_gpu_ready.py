"""GPU-readiness without a GPU: on ``meta`` tensors (no data, so any host read raises), count dispatched ops.

With ``validate_args=False`` the functions and a metric moved with ``.to("meta")`` accept a meta batch,
read nothing back (a read of a meta tensor raises), and dispatch a number of aten ops that does not grow
with the batch: at most 40 for the issue's shapes. This is what FakeTensor tracing under torch.compile sees.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity
from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy
from xent_metrics.functional._nll import nll_shifted64

MAX_OPS = 40


class _OpCounter(TorchDispatchMode):
    """Count aten ops; record those that read values back to the host."""

    READS = frozenset({"_local_scalar_dense", "nonzero", "item", "masked_select", "unique", "_unique2", "bincount"})

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device="meta")


def _count(fn, *args, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    with _OpCounter() as counter:
        fn(*args, **kwargs)
    assert not set(counter.ops) & _OpCounter.READS, counter.ops
    return counter.ops


@pytest.mark.parametrize("shape", [(65536, 1000), (4096, 32000), (256, 10)])
def test_multiclass_function_on_meta_dispatches_a_bounded_number_of_ops(shape: tuple[int, int]) -> None:
    ops = _count(multiclass_cross_entropy, _meta(*shape), _meta(shape[0], dtype=torch.long), validate_args=False)
    assert len(ops) <= MAX_OPS, (len(ops), ops)


def test_the_op_count_does_not_grow_with_the_batch() -> None:
    """Up to one device block (2**27 elements) an update is one block: the same ops for any number of rows."""
    counts = {}
    for rows in (40000, 65536, 131072):
        z, t = _meta(rows, 1000), _meta(rows, dtype=torch.long)
        counts[rows] = len(_count(multiclass_cross_entropy, z, t, validate_args=False))
        y = _meta(rows * 2, 100, dtype=torch.long)
        counts[("ml", rows)] = len(_count(multilabel_cross_entropy, _meta(rows * 2, 100), y, validate_args=False))
    assert counts[40000] == counts[65536] == counts[131072] <= MAX_OPS, counts
    assert counts[("ml", 40000)] == counts[("ml", 65536)] == counts[("ml", 131072)] <= MAX_OPS, counts


def test_multilabel_and_binary_functions_on_meta() -> None:
    ops = _count(
        multilabel_cross_entropy, _meta(262144, 100), _meta(262144, 100, dtype=torch.long), validate_args=False
    )
    assert len(ops) <= MAX_OPS, (len(ops), ops)
    ops = _count(binary_cross_entropy, _meta(1 << 20), _meta(1 << 20, dtype=torch.long), validate_args=False)
    assert len(ops) <= MAX_OPS, (len(ops), ops)


@pytest.mark.parametrize(
    ("metric", "preds", "target"),
    [
        (lambda: MulticlassCrossEntropy(1000, validate_args=False), (65536, 1000), (65536,)),
        (lambda: MulticlassCrossEntropy(32000, validate_args=False), (4096, 32000), (4096,)),
        (lambda: MulticlassCrossEntropy(10, validate_args=False), (256, 10), (256,)),
        (lambda: MultilabelCrossEntropy(100, validate_args=False), (262144, 100), (262144, 100)),
        (lambda: Perplexity(ignore_index=-100, validate_args=False), (8, 512, 1000), (8, 512)),
    ],
    ids=["ce-65536x1000", "ce-4096x32000", "ce-256x10", "mlce-262144x100", "ppl-8x512x1000"],
)
def test_a_metric_moved_to_meta_updates_without_reading_values(metric, preds, target) -> None:  # type: ignore[no-untyped-def]
    moved = metric().to("meta")
    ops = _count(moved.update, _meta(*preds), _meta(*target, dtype=torch.long))
    assert len(ops) <= MAX_OPS, (len(ops), ops)
    assert moved.sums.device.type == "meta" and moved.update_count == 1


def test_validate_args_true_still_refuses_a_meta_batch_naming_it() -> None:
    with pytest.raises(ValueError, match=r"`preds` is on the meta device.*validate_args=False"):
        multiclass_cross_entropy(_meta(4, 3), _meta(4, dtype=torch.long))


def test_the_float64_form_used_off_the_cpu_is_exact_on_confident_rows() -> None:
    """The kernel every non-CPU device runs, checked here on CPU tensors against log1p of exact float64 terms."""
    g = torch.Generator().manual_seed(9)
    z = torch.randn(6, 50, generator=g) * 0.3
    t = torch.arange(6)
    margins = torch.tensor([0.3, 20.3, 30.3, 55.7, 79.7, 88.9])  # the last overflows float32 exp unshifted
    z[torch.arange(6), t] = margins
    got = nll_shifted64(z, t)
    z64 = z.double()
    diffs = z64 - z64.gather(1, t[:, None])
    expected = torch.where(torch.arange(50)[None, :] == t[:, None], 0.0, diffs.exp()).sum(1).log1p()
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)
    assert bool((got > 0).all())


def test_the_hidden_state_path_on_meta_reads_nothing_and_does_not_grow_with_the_tokens() -> None:
    from xent_metrics.functional import linear_cross_entropy

    weight = _meta(32000, 512)
    counts = set()
    for tokens in (256, 1024, 4096):
        hidden, target = _meta(tokens, 512), _meta(tokens, dtype=torch.long)
        counts.add(len(_count(linear_cross_entropy, hidden, weight, target, ignore_index=-100, validate_args=False)))
    assert len(counts) == 1, counts
    metric = Perplexity(ignore_index=-100, validate_args=False).to("meta")
    ops = _count(metric.update, _meta(4, 512, 512), _meta(4, 512, dtype=torch.long), linear_weight=weight)
    assert metric.update_count == 1 and len(ops) <= counts.pop()  # the update alone: no compute


#: Issue 22: the per-step update's ops on a meta batch.
MAX_STEP_OPS = 12


def test_a_per_step_update_dispatches_at_most_12_ops_on_meta() -> None:
    """``MulticlassCrossEntropy(10).update`` of a (256, 10) batch: at most 12 ops on meta, reading nothing.

    On meta, as on a GPU, every row takes the float64 form (``nll_shifted64``: 9 ops); then the loss
    sum, one ``where`` that puts it beside the row count in the ``(3, 1)`` totals, and the add to the
    state. The CPU's ratio form is not what is counted here: on the CPU a per-step update also checks,
    with two ``aminmax`` and four host reads, whether any row's terms left float32's range, and only
    then recomputes those rows (a data-dependent recompute that does not run on meta). The first
    update of a row count on a device also makes the totals' mask and counts (three ops, once).
    """
    metric = MulticlassCrossEntropy(10, validate_args=False).to("meta")
    preds, target = _meta(256, 10), _meta(256, dtype=torch.long)
    metric.update(preds, target)  # makes the mask and counts of 256 rows on meta, once
    ops = _count(metric.update, preds, target)
    assert len(ops) <= MAX_STEP_OPS, (len(ops), ops)
    assert metric.update_count == 2 and metric.sums.shape == (3, 1)


def test_forward_adds_at_most_six_ops_to_the_per_step_update_on_the_cpu() -> None:
    """``forward`` is the update's sums plus the batch value: detach, add, the two totals, the warning's test, div.

    Counted on the CPU (``forward`` warns on a batch without weight, a host read that meta refuses),
    where the update is at most 14 ops and the four host reads of its float32 range check.
    """
    g = torch.Generator().manual_seed(4)
    preds, target = torch.randn(256, 10, generator=g) * 3, torch.randint(0, 10, (256,), generator=g)
    metric = MulticlassCrossEntropy(10, validate_args=False)
    counts = {}
    for name, call in (("update", metric.update), ("forward", metric)):
        call(preds, target)  # the totals' mask and counts are made on a first call
        with _OpCounter() as counter:
            call(preds, target)
        counts[name] = counter.ops
    reads = counts["update"].count("_local_scalar_dense")
    assert reads == 4 and len(counts["update"]) - reads <= 14, counts["update"]
    assert len(counts["forward"]) <= len(counts["update"]) + 6, counts
    expected = torch.nn.functional.cross_entropy(preds.double(), target)
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-6, atol=0)  # four equal batches


def test_the_per_step_totals_keep_no_fake_tensor() -> None:
    """The totals' mask and counts are kept per device and row count, but never a fake tensor (tracing)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from xent_metrics.functional import _softmax_ce

    with FakeTensorMode():
        fake = _softmax_ce._totals(torch.zeros((), dtype=torch.float64), 4099)
    assert fake.shape == (3, 1)
    assert all(type(kept) is torch.Tensor for pair in _softmax_ce._TOTALS.values() for kept in pair)
    assert _softmax_ce._totals(torch.tensor(0.3, dtype=torch.float64), 4099).tolist() == [[0.3], [4099.0], [4099.0]]


def test_a_step_in_inference_mode_leaves_nothing_that_a_later_differentiable_forward_cannot_use() -> None:
    """Lightning validates under ``inference_mode``; a training ``forward`` of the same row count comes after."""
    g = torch.Generator().manual_seed(5)
    metric = MulticlassCrossEntropy(5)
    with torch.inference_mode():
        metric.update(torch.randn(4097, 5, generator=g), torch.randint(0, 5, (4097,), generator=g))
    logits = torch.randn(4097, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (4097,), generator=g)
    metric(logits, target).backward()
    ours = logits.grad.clone()  # type: ignore[union-attr]
    logits.grad = None
    torch.nn.functional.cross_entropy(logits, target).backward()
    torch.testing.assert_close(ours, logits.grad, rtol=1e-12, atol=1e-15)


#: The ops an update with ``error_bars=True`` may add to the same update without, per kernel block.
ERROR_BAR_OPS = 40


@pytest.mark.parametrize(
    ("metric", "preds", "target"),
    [
        (lambda eb: MulticlassCrossEntropy(1000, validate_args=False, error_bars=eb), (65536, 1000), (65536,)),
        (
            lambda eb: MulticlassCrossEntropy(1000, average="none", validate_args=False, error_bars=eb),
            (65536, 1000),
            (65536,),
        ),
        (lambda eb: MultilabelCrossEntropy(100, validate_args=False, error_bars=eb), (65536, 100), (65536, 100)),
        (
            lambda eb: MultilabelCrossEntropy(100, average="none", validate_args=False, error_bars=eb),
            (65536, 100),
            (65536, 100),
        ),
        (lambda eb: Perplexity(ignore_index=-100, validate_args=False, error_bars=eb), (8, 512, 1000), (8, 512)),
    ],
    ids=["ce", "ce-none", "mlce", "mlce-none", "ppl"],
)
def test_error_bars_add_a_fixed_number_of_ops_and_read_nothing(metric, preds, target) -> None:  # type: ignore[no-untyped-def]
    """The error-bar rows come from the kernel's pass: no host read, and the same ops for twice the rows."""
    counts = {}
    for scale in (1, 2):
        shape, labels = (preds[0] * scale, *preds[1:]), (target[0] * scale, *target[1:])
        for error_bars in (False, True):
            moved = metric(error_bars).to("meta")
            counts[scale, error_bars] = len(_count(moved.update, _meta(*shape), _meta(*labels, dtype=torch.long)))
    assert counts[1, True] == counts[2, True], counts
    assert counts[1, True] - counts[1, False] <= ERROR_BAR_OPS, counts


def test_error_bars_of_documents_and_hidden_states_on_meta() -> None:
    """``cluster_ids`` (no ``unique``: a ``(B, B)`` comparison) and a head's blocks: a fixed number of ops per block."""
    weight = _meta(32000, 512)
    counts = {}
    for sequences in (4, 16):
        ids = _meta(sequences, dtype=torch.long)
        for error_bars in (False, True):
            extra = {"cluster_ids": ids} if error_bars else {}
            scores = Perplexity(ignore_index=-100, validate_args=False, error_bars=error_bars).to("meta")
            counts["scores", sequences, error_bars] = len(
                _count(scores.update, _meta(sequences, 512, 1000), _meta(sequences, 512, dtype=torch.long), **extra)
            )
            head = Perplexity(ignore_index=-100, validate_args=False, error_bars=error_bars).to("meta")
            hidden, target = _meta(sequences, 512, 512), _meta(sequences, 512, dtype=torch.long)
            ops = _count(head.update, hidden, target, linear_weight=weight, **extra)
            counts["head", sequences, error_bars] = len(ops), ops.count("mm")  # one GEMM per block
    assert counts["scores", 4, True] == counts["scores", 16, True], counts
    assert counts["scores", 4, True] - counts["scores", 4, False] <= ERROR_BAR_OPS, counts
    for sequences in (4, 16):
        (plain, blocks), (with_bars, same_blocks) = counts["head", sequences, False], counts["head", sequences, True]
        assert blocks == same_blocks and with_bars - plain <= ERROR_BAR_OPS + 3 * blocks, counts
