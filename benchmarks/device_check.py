"""The correctness pass of ``--device cuda``: each task on the device against float64 references, and a 2-rank sync.

Every value is compared with a reference computed on the same device in float64 by ``torch.nn.functional``
or by an exact form (``log1p`` of the other classes' terms for confident rows, ``softplus`` for confident
binary elements), never by the package's own code, with a relative tolerance alone. The distributed
check runs one ``MulticlassCrossEntropy`` per rank on the device (gloo all-reduces CUDA tensors through
the host; NCCL refuses two ranks on one GPU) and compares the synced value with the single-process one.
``python benchmarks/run.py --check-only --device cpu`` runs the same pass on the CPU (the suite does).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Check = tuple[str, Callable[[str], tuple[float, float]]]


def _rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((got.double() - ref.double()).abs() / ref.double().abs()).max())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ce_logits(device: str) -> tuple[float, float]:
    from xent_metrics.functional import multiclass_cross_entropy

    g = _gen(1)
    z = (torch.randn(4096, 1000, generator=g) * 3).to(device)
    t = torch.randint(0, 1000, (4096,), generator=g).to(device)
    t[::7] = -100
    w = (torch.rand(1000, generator=g) + 0.3).to(device)
    s = (torch.rand(4096, generator=g) + 0.1).to(device)
    got = multiclass_cross_entropy(z, t, weight=w, sample_weight=s, ignore_index=-100)
    keep = t != -100
    per = F.cross_entropy(z.double(), t, weight=w.double(), ignore_index=-100, reduction="none")
    ref = (per * s.double()).sum() / (w.double()[t[keep]] * s.double()[keep]).sum()
    return _rel(got, ref), 2e-6


def _ce_confident(device: str) -> tuple[float, float]:
    from xent_metrics.functional import multiclass_cross_entropy

    g = _gen(2)
    z = torch.randn(512, 64, generator=g).double()
    t = torch.randint(0, 64, (512,), generator=g)
    z[torch.arange(512), t] += torch.linspace(20.0, 600.0, 512, dtype=torch.float64)  # margins to 600 nats
    z = z.float().double()  # the float32 values are the given ones
    rest = (z - z.gather(1, t[:, None])).exp().scatter(1, t[:, None], 0).sum(1)
    ref = rest.log1p().to(device)  # exact per row: log1p(sum_{j != t} exp(z_j - z_t)), down to 1e-261
    picked = range(0, 512, 37)  # one row at a time: a mean would hide the tiny losses of confident rows
    rows = [multiclass_cross_entropy(z[i : i + 1].float().to(device), t[i : i + 1].to(device)) for i in picked]
    return _rel(torch.stack(rows), ref[::37]), 1e-6


def _ce_probs(device: str) -> tuple[float, float]:
    from xent_metrics.functional import multiclass_cross_entropy

    g = _gen(3)
    p = torch.rand(2048, 10, generator=g)
    p = p / p.sum(1, keepdim=True)
    t = torch.randint(0, 10, (2048,), generator=g)
    eps = torch.finfo(torch.float32).eps
    ref = -p.double().clamp(eps, 1 - eps).gather(1, t[:, None]).log().mean()
    return _rel(multiclass_cross_entropy(p.to(device), t.to(device), input_format="probs"), ref.to(device)), 1e-6


def _bce(device: str) -> tuple[float, float]:
    from xent_metrics.functional import multilabel_cross_entropy

    g = _gen(4)
    z = torch.randn(1024, 16, generator=g) * 4
    z[:, 0] = torch.linspace(-700.0, 700.0, 1024)  # confident elements, both signs
    z = z.float()
    y = torch.randint(0, 2, (1024, 16), generator=g).float()
    pos = torch.rand(16, generator=g) + 0.5
    zd, yd = z.double(), y.double()
    per = pos.double() * yd * F.softplus(-zd) + (1 - yd) * F.softplus(zd)  # exact for any margin
    got = multilabel_cross_entropy(z.to(device), y.to(device), pos_weight=pos.to(device), average="none")
    return _rel(got, per.mean(0).to(device)), 1e-6


def _hidden(device: str) -> tuple[float, float]:
    from xent_metrics.functional import linear_cross_entropy

    g = _gen(5)
    h = (torch.randn(2048, 256, generator=g) / 16).to(device)
    w = torch.randn(8192, 256, generator=g).to(device)
    t = torch.randint(0, 8192, (2048,), generator=g).to(device)
    ref = F.cross_entropy(F.linear(h.double(), w.double()), t)
    return _rel(linear_cross_entropy(h, w, t), ref), 2e-5  # the float32 GEMM's rounding of each logit


def _metric_data(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(6)
    return torch.randn(999, 37, generator=g).to(device), torch.randint(0, 37, (999,), generator=g).to(device)


def _metric_splits(device: str) -> tuple[float, float]:
    from xent_metrics import MulticlassCrossEntropy

    z, t = _metric_data(device)
    metric = MulticlassCrossEntropy(num_classes=37, average="macro").to(device)
    for part in (slice(0, 1), slice(1, 500), slice(500, 999)):
        metric.update(z[part], t[part])
    per = F.cross_entropy(z.double(), t, reduction="none")
    counts = torch.bincount(t, minlength=37).double()
    ref = (torch.zeros(37, dtype=torch.float64, device=device).index_add_(0, t, per) / counts).mean()
    return _rel(metric.compute(), ref), 2e-6


def _split_invariance(device: str) -> tuple[float, float]:
    from xent_metrics import MulticlassCrossEntropy
    from xent_metrics.functional import multiclass_cross_entropy

    z, t = _metric_data(device)
    metric = MulticlassCrossEntropy(num_classes=37, average="macro").to(device)
    for part in (slice(0, 1), slice(1, 500), slice(500, 999)):
        metric.update(z[part], t[part])
    return _rel(metric.compute(), multiclass_cross_entropy(z, t, average="macro")), 1e-12


CHECKS: list[Check] = [
    ("CE logits, class and sample weights, ignore_index", _ce_logits),
    ("CE confident rows (margins 20 to 600 nats)", _ce_confident),
    ("CE probabilities (clipped as log_loss)", _ce_probs),
    ("BCE multilabel, pos_weight, confident elements", _bce),
    ("hidden states (2048, 256, 8192)", _hidden),
    ("Metric over 3 batch splits, macro", _metric_splits),
    ("the same, against the function on the whole batch", _split_invariance),
]


def _rank(rank: int, port: int, device: str, queue: Any) -> None:
    import torch.distributed as dist

    from xent_metrics import MulticlassCrossEntropy

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
    )
    try:
        g = _gen(7)
        z, t = torch.randn(600, 11, generator=g), torch.randint(0, 11, (600,), generator=g)
        metric = MulticlassCrossEntropy(num_classes=11, average="none").to(device)
        part = slice(0, 211) if rank == 0 else slice(211, 600)
        metric.update(z[part].to(device), t[part].to(device))
        value = metric.compute()
        queue.put((rank, str(metric.sums.device), value.cpu()))
    finally:
        dist.destroy_process_group()


def distributed_check(device: str, timeout: float = 120.0) -> dict[str, Any]:
    """Two gloo ranks, each a metric on ``device`` with part of the data: the synced value against one process."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, device, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = sorted(queue.get(timeout=timeout) for _ in procs)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    from xent_metrics import MulticlassCrossEntropy

    g = _gen(7)
    z, t = torch.randn(600, 11, generator=g), torch.randint(0, 11, (600,), generator=g)
    one = MulticlassCrossEntropy(num_classes=11, average="none").to(device)
    one.update(z.to(device), t.to(device))
    err = max(_rel(value, one.compute().cpu()) for _, _, value in results)
    devices = sorted({d for _, d, _ in results})
    name = f"2 gloo ranks, a metric each on {', '.join(devices)}, against one process"
    return {"check": name, "max_rel_err": err, "limit": 1e-12, "ok": bool(err <= 1e-12)}


def run_checks(device: str, distributed: bool = True) -> list[dict[str, Any]]:
    """Every check on ``device``: name, the largest relative error, its limit, whether it holds."""
    out = []
    for name, check in CHECKS:
        err, limit = check(device)
        out.append({"check": name, "max_rel_err": err, "limit": limit, "ok": bool(err <= limit)})
    if distributed:
        out.append(distributed_check(device))
    return out


def table(rows: list[dict[str, Any]], device: str) -> str:
    lines = [f"| correctness on {device} | max relative error | limit | holds |", "|---|---|---|---|"]
    for r in rows:
        err = r["max_rel_err"]
        shown = "0" if err == 0 else f"{err:.1e}" if math.isfinite(err) else str(err)
        lines.append(f"| {r['check']} | {shown} | {r['limit']:.0e} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)
