"""Issue 15's workload: cross-entropy from hidden states, against torch's chunked and full-logits paths."""

from __future__ import annotations

from typing import Any

from benchmarks.spec import Accuracy, Case, Impl, Inputs, MiB, PeakMemory, Speedup

OURS = "ours: linear_cross_entropy"
CHUNKED = "F.linear_cross_entropy (chunked)"
LOGITS = "F.cross_entropy(h @ W.T)"


def _inputs(n: int, d: int, v: int) -> Any:
    def make(device: str) -> Inputs:
        import torch

        g = torch.Generator().manual_seed(5)
        hidden = (torch.randn(n, d, generator=g) / d**0.5).to(device)
        weight = torch.randn(v, d, generator=g).to(device)
        return {"hidden": hidden, "weight": weight, "target": torch.randint(0, v, (n,), generator=g).to(device)}

    return make


def _call(name: str) -> Any:
    def build(x: Inputs) -> Any:
        import torch
        import torch.nn.functional as F

        from xent_metrics.functional import linear_cross_entropy

        h, w, t = x["hidden"], x["weight"], x["target"]
        options = torch.nn.LinearCrossEntropyOptions()
        calls = {
            OURS: lambda: linear_cross_entropy(h, w, t, validate_args=False) * t.numel(),
            CHUNKED: lambda: F.linear_cross_entropy(h, w, t, reduction="sum", options=options),
            LOGITS: lambda: F.cross_entropy(h @ w.T, t, reduction="sum"),
        }

        def call() -> Any:
            with torch.no_grad():
                return calls[name]()

        return call

    return build


def _check(x: Inputs, out: dict[str, Any]) -> dict[str, float]:
    """Relative error of each sum against F.cross_entropy(F.linear(...)) in float64."""
    import torch.nn.functional as F

    ref = F.cross_entropy(F.linear(x["hidden"].double(), x["weight"].double()), x["target"], reduction="sum").item()
    return {f"rel_err[{name}]": abs(float(value) - ref) / ref for name, value in out.items()}


def linear_case(n: int = 8192, d: int = 512, v: int = 32000) -> Case:
    return Case(
        name=f"linear_ce_{n}x{d}x{v}",
        title=f"CE from hidden states ({n}, {d}) and a ({v}, {d}) head, float32, no logits kept",
        make=_inputs(n, d, v),
        impls=[
            Impl(OURS, True, _call(OURS), warm_rows=None),
            Impl(CHUNKED, False, _call(CHUNKED), warm_rows=None),
            Impl(LOGITS, False, _call(LOGITS), warm_rows=None),
        ],
        peer=CHUNKED,
        input_bytes=lambda x: (x["hidden"].numel() + x["weight"].numel()) * 4,
        floor_work=lambda x: (
            x["hidden"].shape[0] * x["weight"].shape[0],
            0,
            (x["hidden"].numel() + x["weight"].numel()) * 4,
        ),
        targets=[
            Speedup("ours >= 1.0x torch's chunked path", OURS, CHUNKED, 1.0),
            Speedup("ours >= 1.0x F.cross_entropy(h @ W.T)", OURS, LOGITS, 1.0),
            PeakMemory("ours peak extra <= 64 MiB", OURS, 64 * MiB),
            Accuracy("ours rel. error <= 1e-5 (float32)", f"rel_err[{OURS}]", limit=1e-5),
        ],
        check=_check,
    )
