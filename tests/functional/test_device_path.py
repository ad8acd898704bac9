"""The kernels' off-CPU path, forced on CPU tensors by the test hook ``_chunks.DEVICE_PATH_ON_CPU``.

On a device other than the CPU the kernels read nothing back to the host: float64 for every value, ``where``
instead of a per-row recompute, ``index_add_`` instead of ``bincount``. The oracle suite runs every check on both
paths (``tests/oracle/conftest.py``); here: that the hook takes that path (no op reads a value back), and the
pieces only the compiled kernel reaches off the CPU, against mpmath and numpy.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from xent_metrics import MulticlassCrossEntropy
from xent_metrics.functional import (
    _chunks,
    _nll,
    _softmax_ce,
    binary_cross_entropy,
    linear_cross_entropy,
    multiclass_cross_entropy,
    multilabel_cross_entropy,
)


class _NoHostReads(TorchDispatchMode):
    """Fail on any op that reads tensor values back to the host (what a device sync would be off the CPU)."""

    READS = frozenset({"_local_scalar_dense", "nonzero", "item", "masked_select", "unique", "_unique2", "bincount"})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        assert func.overloadpacket.__name__ not in self.READS, f"a host read on the device path: {func}"
        return func(*args, **(kwargs or {}))


@pytest.fixture
def device_path(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The off-CPU path (run the package's calls inside ``_NoHostReads()``: the checks themselves read)."""
    monkeypatch.setattr(_chunks, "DEVICE_PATH_ON_CPU", True)
    return monkeypatch


def test_the_hook_switches_dtype_and_block_size(device_path: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert not _chunks.on_cpu(cpu)
    assert _chunks.kernel_dtype(torch.float32, cpu) == torch.float64
    assert _chunks.default_chunk(cpu, None) == _chunks.DEVICE_CHUNK_ELEMENTS
    device_path.setattr(_chunks, "DEVICE_PATH_ON_CPU", False)
    assert _chunks.on_cpu(cpu) and _chunks.kernel_dtype(torch.float32, cpu) == torch.float32


def _mp_nll(row: list[float], target: int) -> float:
    with mpmath.workdps(40):
        top = mpmath.mpf(row[target])
        rest = mpmath.fsum(mpmath.exp(mpmath.mpf(z) - top) for j, z in enumerate(row) if j != target)
        return float(mpmath.log1p(rest))


ROWS = [([0.3, -1.2, 2.1], 2), ([95.0, 2.0, -3.0], 0), ([-100.0, -120.5, -101.0], 1), ([110.0, 120.25, 0.0], 2)]


def test_terms_are_selected_without_a_host_read(device_path: pytest.MonkeyPatch) -> None:
    """``nll_from_terms`` off the CPU (the compiled kernel's): a ``where`` picks the float64 recompute per row."""
    z = torch.tensor([r for r, _ in ROWS], dtype=torch.float32)
    t = torch.tensor([c for _, c in ROWS])
    with _NoHostReads():
        own, rest = _nll.exp_terms(z, t)
        got = _nll.nll_from_terms(z, t, own, rest)
    expected = torch.tensor([_mp_nll(r, c) for r, c in ROWS], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_public_functions_run_without_a_host_read(device_path: pytest.MonkeyPatch) -> None:
    """Each task on the device path, far rows included, against float64 torch (relative tolerance)."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(12, 5, generator=gen) * 40
    t = torch.randint(0, 5, (12,), generator=gen)
    w = torch.rand(12, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (12, 5), generator=gen)
    with _NoHostReads():
        got = multiclass_cross_entropy(z, t, sample_weight=w, validate_args=False)
        multilabel = multilabel_cross_entropy(z, y, validate_args=False)
        binary = binary_cross_entropy(z[:, 0], y[:, 0], validate_args=False)
    per_row = torch.nn.functional.cross_entropy(z.double(), t, reduction="none")
    torch.testing.assert_close(got, (per_row * w).sum() / w.sum(), rtol=1e-12, atol=0)
    want = torch.nn.functional.binary_cross_entropy_with_logits(z.double(), y.double())
    torch.testing.assert_close(multilabel, want, rtol=1e-12, atol=0)
    want = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0].double(), y[:, 0].double())
    torch.testing.assert_close(binary, want, rtol=1e-12, atol=0)


def test_hidden_states_with_ignored_tokens_on_the_device_path(device_path: pytest.MonkeyPatch) -> None:
    """The head masks ignored tokens in the kernel (no compaction read) and projects in device-sized blocks."""
    gen = torch.Generator().manual_seed(5)
    hidden, head = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.randn(7, 4, generator=gen).double()
    target = torch.randint(0, 7, (30,), generator=gen)
    target[::4] = -100
    with _NoHostReads():
        got = linear_cross_entropy(hidden, head * 9, target, ignore_index=-100, validate_args=False)
    want = torch.nn.functional.cross_entropy(hidden @ (head * 9).T, target, ignore_index=-100)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_class_counts_and_per_class_sums_without_bincount(device_path: pytest.MonkeyPatch) -> None:
    """Per-class sums of a small unit batch: ``index_add_`` counts and losses, as numpy counts them."""
    t = torch.tensor([3, 0, 3, 1, 3, 0])
    z = torch.tensor([[0.3, -0.7, 1.1, 0.2, -2.0]] * 6, dtype=torch.float64) * torch.arange(1, 7)[:, None]
    metric = MulticlassCrossEntropy(num_classes=5, average="none", validate_args=False)
    with _NoHostReads():
        counts = _softmax_ce.class_counts(t, 5)
        metric.update(z, t)
    assert counts.tolist() == np.bincount(t.numpy(), minlength=5).tolist()
    per_row = torch.nn.functional.cross_entropy(z, t, reduction="none").numpy()
    want = [per_row[t.numpy() == c].mean() if (t == c).any() else np.nan for c in range(5)]
    np.testing.assert_allclose(metric.compute().numpy(), want, rtol=1e-12)
