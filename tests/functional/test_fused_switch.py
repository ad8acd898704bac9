"""The public ``fused=`` switch: the compiled kernel gives the eager values and compiles once per class count."""

import pytest
import torch
from helpers import cases

from xent_metrics import MulticlassCrossEntropy, MulticlassNormalizedEntropy, Perplexity
from xent_metrics.functional import _fused, multiclass_cross_entropy, multiclass_normalized_entropy

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

    monkeypatch.setattr(_fused, "FUSED_CHUNK_ELEMENTS", 16 * C)  # 16-row blocks: small batches reach the kernel
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
