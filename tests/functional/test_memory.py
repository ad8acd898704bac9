"""Peak extra memory of the kernels stays at a few blocks, whatever the size of the input.

Two measurements, both deterministic: every tensor the kernels allocate, tracked through a
``TorchDispatchMode`` (live bytes of new storages, released when the storage is freed), and, in a
fresh child process, the RSS high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``)
minus the RSS before the call, with generous margins. Each has a positive control: the same
measurement sees ``F.cross_entropy`` materialise the full-size log-softmax.
"""

import json
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from xent_metrics.functional import _chunks, linear_cross_entropy
from xent_metrics.functional._bce import bce_sums
from xent_metrics.functional._softmax_ce import softmax_ce_sums
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.functional.multilabel import MultilabelTask

MiB = 1 << 20


class PeakTensorBytes(TorchDispatchMode):
    """Track the bytes of storages created while active; ``peak`` is the high-water mark of the live ones."""

    def __init__(self, *inputs: torch.Tensor) -> None:
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
        self.live = self.peak = 0

    def _release(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self.known.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key not in self.known and storage.nbytes():
                    self.known.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


def _ce(preds, target, sample_weight=None, chunk_elements=None, class_weight=None, **options):
    options = MulticlassTask(weight=class_weight, **options)
    return softmax_ce_sums(preds, target, options, sample_weight, chunk_elements=chunk_elements)


def _bce(preds, target, sample_weight=None, chunk_elements=None, **options):
    return bce_sums(preds, target, MultilabelTask(**options), sample_weight, chunk_elements=chunk_elements)


def _peak(fn, *inputs) -> int:
    with PeakTensorBytes(*inputs) as tracker:
        fn()
    return tracker.peak


CHUNK = 1 << 12  # 16 KiB float32 blocks: the bound below is a few blocks, the input is 256x larger


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"ignore_index": 1, "sample_weight": "w"}, {"input_format": "probs"}],
    ids=["plain", "smoothing", "weighted", "probs"],
)
def test_multiclass_kernel_allocates_a_few_blocks(options: dict) -> None:
    n, c = 4096, 256  # 4 MiB of float32 logits
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(n, c, generator=gen), torch.randint(0, c, (n,), generator=gen)
    if options.get("input_format") == "probs":
        z = torch.softmax(z, 1)
    opts = {**options, "sample_weight": torch.rand(n, generator=gen)} if "sample_weight" in options else options
    extra = _peak(lambda: _ce(z, y, chunk_elements=CHUNK, **opts), z, y, *opts.values())
    assert 0 < extra <= 6 * CHUNK * 4 + 64 * c * 8, extra
    assert _peak(lambda: F.cross_entropy(z, y, reduction="sum"), z, y) >= z.numel() * 4  # the control


@pytest.mark.parametrize("target_dtype", [torch.float32, torch.int64])
@pytest.mark.parametrize(
    "options",
    [{}, {"ignore_index": -1}, {"pos_weight": "pw"}, {"scale": 60.0}, {"scale": 60.0, "pos_weight": "pw"}],
    ids=["plain", "ignore", "pos", "confident", "confident-pos"],
)
def test_multilabel_kernel_allocates_a_few_blocks(target_dtype, options: dict) -> None:
    """Confident logits (a third beyond |z| = 86) recompute those elements in float64: still a few blocks."""
    n, k = 16384, 64
    gen = torch.Generator().manual_seed(1)
    options = dict(options)
    z = torch.randn(n, k, generator=gen) * options.pop("scale", 1.0)
    y = (torch.rand(n, k, generator=gen) < 0.3).to(target_dtype)
    opts = {**options, "pos_weight": torch.rand(k, generator=gen) + 0.5} if "pos_weight" in options else options
    extra = _peak(lambda: _bce(z, y, chunk_elements=CHUNK, **opts), z, y, *opts.values())
    assert 0 < extra <= 12 * CHUNK * 8, extra  # the general (pos_weight) path holds several float64 blocks
    control = _peak(lambda: F.binary_cross_entropy_with_logits(z, y.float(), reduction="none").sum(0), z, y)
    assert control >= z.numel() * 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_hidden_states_widen_the_head_a_block_at_a_time(dtype: torch.dtype) -> None:
    """float32 logits from a float16 / bfloat16 head: one logits block (256 tokens by 4096 vocabulary rows) and one
    float32 block of 4096 head rows, widened once per vocabulary block.

    The control: a float32 copy of the whole head (62.5 MiB here) is what the bound rules out.
    """
    gen = torch.Generator().manual_seed(5)
    hidden, target = torch.randn(256, 512, generator=gen).to(dtype), torch.randint(0, 32000, (256,), generator=gen)
    head = (torch.randn(32000, 512, generator=gen) * 0.05).to(dtype)
    extra = _peak(lambda: linear_cross_entropy(hidden, head, target, validate_args=False), hidden, head, target)
    assert 0 < extra <= _chunks.HEAD_BLOCK_BYTES + 8 * MiB, extra  # 4 MiB of logits, 8 MiB of head block
    assert _peak(lambda: head.float(), head) >= 32000 * 512 * 4 > extra  # the control


def test_soft_targets_and_trailing_dimensions_allocate_a_few_blocks() -> None:
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(512, 8, 64, generator=gen)  # (N, C, L): blocks are transposed copies, still block-sized
    soft = torch.softmax(torch.randn(512, 8, 64, generator=gen), 1)
    extra = _peak(lambda: _ce(z, soft, chunk_elements=CHUNK), z, soft)
    assert 0 < extra <= 12 * CHUNK * 8, extra


@pytest.mark.parametrize("input_format", ["logits", "probs", "log_probs"])
def test_value_checks_allocate_no_copy_of_the_input(input_format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_args=True reads preds with aminmax and row sums in blocks: nothing of the input's size."""
    from xent_metrics import MulticlassCrossEntropy
    from xent_metrics.functional import multiclass_cross_entropy

    monkeypatch.setattr(_chunks, "CHUNK_ELEMENTS", CHUNK)
    n, c = 8192, 128  # 8 MiB of float64
    gen = torch.Generator().manual_seed(3)
    z, y = torch.randn(n, c, generator=gen, dtype=torch.float64), torch.randint(0, c, (n,), generator=gen)
    preds = {"logits": z, "probs": torch.softmax(z, 1), "log_probs": torch.log_softmax(z, 1)}[input_format]
    metric = MulticlassCrossEntropy(num_classes=c, input_format=input_format)
    for fn in (lambda: multiclass_cross_entropy(preds, y, input_format=input_format), lambda: metric.update(preds, y)):
        extra = _peak(fn, preds, y)
        assert 0 < extra <= preds.numel() * 8 // 16, extra  # row sums and blocks, never a copy of preds
    assert _peak(lambda: (~torch.isfinite(preds)).sum(), preds) >= preds.numel()  # the control: a bool copy


_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    import torch.nn.functional as F
    from xent_metrics.functional._bce import bce_sums
    from xent_metrics.functional.multiclass import MulticlassTask
    from xent_metrics.functional.multilabel import MultilabelTask
    from xent_metrics.functional._softmax_ce import softmax_ce_sums

    def kib(field):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1])

    def extra(fn):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = kib("VmRSS")
        fn()
        return (kib("VmHWM") - before) * 1024

    torch.set_num_threads(1)
    ce, bce = MulticlassTask(), MultilabelTask()
    z, y = torch.randn(4, 1000), torch.randint(0, 1000, (4,))
    softmax_ce_sums(z, y, ce); bce_sums(z, (z > 0).float(), bce)  # load the code paths
    z, y = torch.randn(65536, 1000), torch.randint(0, 1000, (65536,))  # 250 MiB of logits
    out = {"ce": extra(lambda: softmax_ce_sums(z, y, ce)), "control": extra(lambda: F.cross_entropy(z, y))}
    del z, y
    z = torch.randn(262144, 100)
    labels = (z > 0.5).float()
    out["bce"] = extra(lambda: bce_sums(z, labels, bce))
    print(json.dumps(out))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset VmHWM")
def test_rss_high_water_stays_at_a_few_mib_for_a_quarter_gib_input() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=240, check=True)
    extra = json.loads(done.stdout.strip().splitlines()[-1])
    assert extra["control"] >= 200 * MiB, extra  # F.cross_entropy's log-softmax: the measurement sees it
    assert extra["ce"] <= 16 * MiB, extra  # 2% of the logits is 5 MiB; 16 leaves room for allocator slack
    assert extra["bce"] <= 16 * MiB, extra
