"""Issue 22's workload: cross-entropy from hidden states at the speed of the projection.

Ours (float32, and bfloat16 / float16 hidden states and head) against the bare projection ``hidden @ W.T``
of the same shapes, torch's chunked ``F.linear_cross_entropy``, and a diagnostic: the GEMMs of our block
plan alone (each block's logits written into one buffer, nothing else), which splits our time into the
GEMM and the rest (loss kernel and bookkeeping) where a target misses.
"""

from __future__ import annotations

from typing import Any

from benchmarks.spec import Accuracy, Case, Impl, Inputs, MiB, PeakMemory, Speedup

OURS = "ours: linear_cross_entropy"
OURS_BF16 = "ours: linear_cross_entropy, bfloat16"
OURS_F16 = "ours: linear_cross_entropy, float16"
CHUNKED = "F.linear_cross_entropy (chunked)"
GEMM = "hidden @ W.T (the bare projection)"
PLAN_GEMMS = "diagnostic: the plan's GEMMs alone"
LOGITS = "F.cross_entropy(h @ W.T)"


def _inputs(n: int, d: int, v: int) -> Any:
    def make(device: str) -> Inputs:
        import torch

        g = torch.Generator().manual_seed(5)
        hidden = (torch.randn(n, d, generator=g) / d**0.5).to(device)
        weight = torch.randn(v, d, generator=g).to(device)
        target = torch.randint(0, v, (n,), generator=g).to(device)
        x = {"hidden": hidden, "weight": weight, "target": target}
        for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
            x[f"hidden_{name}"], x[f"weight_{name}"] = hidden.to(dtype), weight.to(dtype)
        return x

    return make


def _plan_gemms(h: Any, w: Any) -> Any:
    """The GEMMs of our block plan over ``h`` and ``w``, into one reused buffer: the kernel without the loss."""
    import torch

    from xent_metrics.functional import _chunks, _head_ce

    plan = _chunks.head_plan(h, w, None, h.shape[0], None)
    assert plan.logits is not None
    for cols in plan.cols:
        head = w[cols].t()
        for tokens in _head_ce._token_blocks(plan.step, h.shape[0]):
            rows = h[tokens]
            out = plan.logits[: rows.shape[0], : head.shape[1]]
            out = out if out.is_contiguous() else plan.logits.view(-1)[: out.numel()].view(out.shape)
            torch.mm(rows, head, out=out)


def _call(name: str) -> Any:
    def build(x: Inputs) -> Any:
        import torch
        import torch.nn.functional as F

        from xent_metrics.functional import linear_cross_entropy

        h, w, t = x["hidden"], x["weight"], x["target"]
        options = torch.nn.LinearCrossEntropyOptions()
        calls = {
            OURS: lambda: linear_cross_entropy(h, w, t, validate_args=False) * t.numel(),
            OURS_BF16: lambda: linear_cross_entropy(x["hidden_bf16"], x["weight_bf16"], t, validate_args=False),
            OURS_F16: lambda: linear_cross_entropy(x["hidden_f16"], x["weight_f16"], t, validate_args=False),
            CHUNKED: lambda: F.linear_cross_entropy(h, w, t, reduction="sum", options=options),
            GEMM: lambda: h @ w.T,
            PLAN_GEMMS: lambda: _plan_gemms(h, w),
            LOGITS: lambda: F.cross_entropy(h @ w.T, t, reduction="sum"),
        }

        def call() -> Any:
            with torch.no_grad():
                return calls[name]()

        return call

    return build


def _check(x: Inputs, out: dict[str, Any]) -> dict[str, float]:
    """Relative error of each sum against F.cross_entropy(F.linear(...)) in float64, a block of tokens at a time."""
    import torch.nn.functional as F

    h, w, t = x["hidden"].double(), x["weight"].double(), x["target"]
    step = max(1, (1 << 25) // w.shape[0])  # 256 MiB of float64 logits at most
    ref = sum(
        F.cross_entropy(F.linear(h[s : s + step], w), t[s : s + step], reduction="sum").item()
        for s in range(0, h.shape[0], step)
    )
    return {f"rel_err[{name}]": abs(float(out[name]) - ref) / ref for name in (OURS, CHUNKED) if name in out}


def linear_case(n: int = 8192, d: int = 512, v: int = 32000) -> Case:
    return Case(
        name=f"linear_ce_{n}x{d}x{v}",
        title=f"CE from hidden states ({n}, {d}) and a ({v}, {d}) head, float32, no logits kept",
        make=_inputs(n, d, v),
        impls=[
            Impl(OURS, True, _call(OURS), warm_rows=None),
            Impl(OURS_BF16, True, _call(OURS_BF16), warm_rows=None),
            Impl(OURS_F16, True, _call(OURS_F16), warm_rows=None),
            Impl(CHUNKED, False, _call(CHUNKED), warm_rows=None),
            Impl(GEMM, False, _call(GEMM), warm_rows=None),
            Impl(PLAN_GEMMS, False, _call(PLAN_GEMMS), warm_rows=None),
            Impl(LOGITS, False, _call(LOGITS), warm_rows=None, full_only=True),
        ],
        peer=CHUNKED,
        input_bytes=lambda x: (x["hidden"].numel() + x["weight"].numel()) * 4,
        floor_work=lambda x: (
            x["hidden"].shape[0] * x["weight"].shape[0],
            0,
            (x["hidden"].numel() + x["weight"].numel()) * 4,
        ),
        targets=[
            Speedup("ours <= 1.2x the bare hidden @ W.T", OURS, GEMM, 1 / 1.2),
            Speedup("ours >= 1.1x torch's chunked path", OURS, CHUNKED, 1.1),
            Speedup("bfloat16 <= 1.3x our float32 time", OURS_BF16, OURS, 1 / 1.3),
            Speedup("float16 <= 1.3x our float32 time", OURS_F16, OURS, 1 / 1.3),
            PeakMemory("ours peak extra <= 32 MiB", OURS, 32 * MiB),
            Accuracy("ours rel. error <= 1e-5 (float32)", f"rel_err[{OURS}]", limit=1e-5),
        ],
        check=_check,
    )


def linear_cases() -> list[Case]:
    """Issue 22's two shapes: a 32k vocabulary at d = 512 and a 128k one (Llama 3's 128256) at d = 256."""
    return [linear_case(), linear_case(4096, 256, 128256)]
