"""The public ``fused=`` switch: the compiled kernel gives the eager values and compiles once per class count."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import cases

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity
from xent_metrics.functional import _chunks, multiclass_cross_entropy, multiclass_normalized_entropy

C = 12


def _batches(dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(30)
    out = []
    for n in (16 * 4 + 5, 16 * 2, 16 + 9):  # full 16-row blocks plus ragged tails of several sizes
        z, target = cases.batch("multiclass", n, C, generator=gen, dtype=torch.float64)
        z = (z * 4).to(dtype)
        z[0, 3] = 400.0  # overflows exp: recomputed with the shift
        out.append((z, target))
    return out


@pytest.mark.slow
def test_fused_switch_equals_eager_everywhere_and_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch._inductor")
    from torch._dynamo.utils import counters

    monkeypatch.setattr(_chunks, "FUSED_CHUNK_ELEMENTS", 16 * C)  # 16-row blocks: small batches reach the kernel
    batches = _batches(torch.float64)
    metrics = {
        cls: (cls(**kwargs, fused=True), cls(**kwargs))
        for cls, kwargs in (
            (MulticlassCrossEntropy, {"num_classes": C, "average": "none"}),
            (MulticlassNormalizedEntropy, {"num_classes": C}),
            (Perplexity, {}),
        )
    }
    counters.clear()
    for z, y in batches:
        for fn in (multiclass_cross_entropy, multiclass_normalized_entropy):
            expected = fn(z, y, average="none")
            got = fn(z, y, average="none", fused=True)
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=0, equal_nan=True)  # nan: a class absent
        for fused, eager in metrics.values():
            torch.testing.assert_close(fused(z, y), eager(z, y), rtol=1e-12, atol=0, equal_nan=True)  # forward
    for fused, eager in metrics.values():
        assert fused.fused and not eager.fused
        torch.testing.assert_close(fused.compute(), eager.compute(), rtol=1e-12, atol=0)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])  # one class count, one compile


def test_fused_must_be_a_bool() -> None:
    z, y = torch.zeros(2, 3), torch.tensor([0, 2])
    with pytest.raises(TypeError, match=r"`fused` must be a bool, got int 1"):
        multiclass_cross_entropy(z, y, fused=1)
    for cls, kwargs in ((MulticlassCrossEntropy, {"num_classes": 3}), (Perplexity, {})):
        with pytest.raises(TypeError, match=r"`fused` must be a bool, got str 'yes'"):
            cls(**kwargs, fused="yes")


#: Run in a fresh process with no working C++ compiler (``CXX=/bin/false``) and an empty inductor cache,
#: so the compile really fails, lazily, on the first block (not at ``torch.compile``, which never raises).
_NO_COMPILER_SCRIPT = textwrap.dedent(
    """
    import json, warnings
    import torch
    import torch.nn.functional as F
    from torch._dynamo.utils import counters
    from xent_metrics import MulticlassCrossEntropy
    from xent_metrics.functional import _chunks, multiclass_cross_entropy

    C = 100
    _chunks.FUSED_CHUNK_ELEMENTS = 64 * C  # 64-row fused blocks (read at call time): a small batch spans several
    rows = _chunks.chunk_rows(C, _chunks.FUSED_CHUNK_ELEMENTS)
    n = 3 * rows + 5  # three full fused blocks and a ragged tail
    gen = torch.Generator().manual_seed(51)
    z = torch.randn(n, C, generator=gen) * 3
    y = torch.randint(0, C, (n,), generator=gen)
    z[1, y[1]] += 600.0  # a confident row
    z[rows + 2, 7] = 400.0  # exp overflows float32: recomputed with the shift
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        first = multiclass_cross_entropy(z, y, fused=True)
        attempts = counters["aot_autograd"]["total"]
        again = multiclass_cross_entropy(z[: 2 * rows + 1], y[: 2 * rows + 1], fused=True)
        metric = MulticlassCrossEntropy(num_classes=C, fused=True)
        metric.update(z, y)
    print(json.dumps({
        "blocks": n // rows,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in seen],
        "attempts_first_call": attempts,
        "attempts": counters["aot_autograd"]["total"],
        "first": first.item(),
        "again": again.item(),
        "metric": metric.compute().item(),
        "ref": F.cross_entropy(z.double(), y).item(),
        "ref_again": F.cross_entropy(z[: 2 * rows + 1].double(), y[: 2 * rows + 1]).item(),
    }))
    """
)


@pytest.mark.slow
def test_fused_without_a_compiler_warns_once_tries_once_and_runs_eagerly(tmp_path: Path) -> None:
    pytest.importorskip("torch._inductor")
    root = Path(__file__).resolve().parents[2]
    cache = tmp_path / "inductor"
    cache.mkdir()
    env = {
        **os.environ,
        "CXX": "/bin/false",
        "CC": "/bin/false",
        "TORCHINDUCTOR_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _NO_COMPILER_SCRIPT], env=env, cwd=root, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["blocks"] == 3  # three fused blocks, and one warning below: not one per block
    assert len(out["warnings"]) == 1, out["warnings"]  # one per process: not one per block, call or metric
    assert out["warnings"][0].startswith(
        "RuntimeWarning: fused=True: torch.compile of the cross-entropy kernel failed"
    ), out["warnings"]
    assert "compiling is not tried again" in out["warnings"][0]
    assert "C++ compiler" in out["warnings"][0], out["warnings"]  # inductor's own error (InvalidCxxCompiler), lazily
    assert out["attempts_first_call"] == 1 and out["attempts"] == 1  # one compile attempt, not one per block
    for got, ref in ((out["first"], out["ref"]), (out["metric"], out["ref"]), (out["again"], out["ref_again"])):
        assert got == pytest.approx(ref, rel=1e-6, abs=0)  # the eager kernel on float32 logits vs float64 torch
