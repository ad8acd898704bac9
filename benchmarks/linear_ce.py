"""Cross-entropy of a linear head from hidden states: ours against torch's chunked and full-logits paths.

Usage::

    python benchmarks/linear_ce.py               # N=8192, d=512, V=32000, 1 and 2 threads (a few minutes)
    python benchmarks/linear_ce.py --repeats 5 --threads 1

Standalone (it imports nothing from the rest of benchmarks/). CPU, float32, no grad. Compared, all
returning the loss sum over the N tokens:

- ``ours``: ``xent_metrics.functional.linear_cross_entropy`` (blocks of at most 8 MiB of logits);
- ``torch_chunked``: ``F.linear_cross_entropy(h, W, t, reduction="sum", options=LinearCrossEntropyOptions())``
  (torch 2.13's chunked path, its default chunking);
- ``reference``: ``F.cross_entropy(h @ W.T, t, reduction="sum")`` (the full ``(N, V)`` logits).

Times: per thread count, one fresh child process runs the three implementations interleaved
(ours, torch_chunked, reference, repeated ``--repeats`` times; median reported), so a change in the
machine's load hits all three alike. Memory: each (implementation, threads) in its own fresh child
process: a small warm-up call, ``malloc_trim``, the RSS high-water mark reset (write 5 to
``/proc/self/clear_refs``), one full call; its ``VmHWM - VmRSS(before)`` is the peak extra memory.
Speed is peer time / our time, with the same thread count. Exactness is checked
in the parent at N=2048 (a float64 reference needs the full float64 logits): ours in float64 against
``F.cross_entropy(F.linear(h, W, b), t)`` in float64, and ours and torch's in float32 against that.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xent_metrics.functional import linear_cross_entropy  # noqa: E402

IMPLS = ("ours", "torch_chunked", "reference")


def inputs(n: int, d: int, v: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, dtype=torch.float64)
    weight = torch.randn(v, d, generator=g, dtype=torch.float64) / d**0.5 * 1.5  # logits of std 1.5
    bias = torch.randn(v, generator=g, dtype=torch.float64) * 0.1
    target = torch.randint(0, v, (n,), generator=g)
    return hidden.to(dtype), weight.to(dtype), bias.to(dtype), target


def call(name: str) -> Callable[..., torch.Tensor]:
    if name == "ours":
        return lambda h, w, b, t: linear_cross_entropy(h, w, t, linear_bias=b) * t.numel()  # mean -> sum
    if name == "torch_chunked":
        options = torch.nn.LinearCrossEntropyOptions()
        return lambda h, w, b, t: F.linear_cross_entropy(h, w, t, linear_bias=b, reduction="sum", options=options)
    return lambda h, w, b, t: F.cross_entropy(torch.addmm(b, h, w.T), t, reduction="sum")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(name: str, threads: int, n: int, d: int, v: int) -> dict:
    """One implementation in this (fresh) process: the peak extra memory of one call, and its value."""
    torch.set_num_threads(threads)
    fn = call(name)
    h, w, b, t = inputs(n, d, v)
    with torch.no_grad():
        fn(h[:64], w, b, t[:64])  # warm-up: libraries, thread pools
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        value = float(fn(h, w, b, t))
        peak = (_status_kib("VmHWM") - before) / 1024
    return {"impl": name, "threads": threads, "peak_mib": peak, "value": value}


def time_child(threads: int, n: int, d: int, v: int, repeats: int) -> dict:
    """Every implementation in this (fresh) process, interleaved ``repeats`` times: median seconds per call."""
    torch.set_num_threads(threads)
    h, w, b, t = inputs(n, d, v)
    fns = {name: call(name) for name in IMPLS}
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    with torch.no_grad():
        for fn in fns.values():
            fn(h[:64], w, b, t[:64])
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(h, w, b, t)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def run_child(args: argparse.Namespace, *extra: str) -> dict:
    command = [sys.executable, __file__, "--n", str(args.n), "--d", str(args.d), "--v", str(args.v),
               "--repeats", str(args.repeats), *extra]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=3600).stdout
    return json.loads(out.strip().splitlines()[-1])


def exactness(n: int, d: int, v: int) -> dict:
    """Relative errors against the float64 full-logits reference at ``n`` tokens."""
    h, w, b, t = inputs(n, d, v, torch.float64, seed=1)
    with torch.no_grad():
        ref = F.cross_entropy(F.linear(h, w, b), t).item()
        ours64 = linear_cross_entropy(h, w, t, linear_bias=b).item()
        h32, w32, b32 = h.float(), w.float(), b.float()
        ours32 = linear_cross_entropy(h32, w32, t, linear_bias=b32).item()
        opts = torch.nn.LinearCrossEntropyOptions()
        torch32 = F.linear_cross_entropy(h32, w32, t, linear_bias=b32, options=opts).item()
        full32 = F.cross_entropy(F.linear(h32, w32, b32), t).item()
        blocks = [linear_cross_entropy(h32, w32, t, linear_bias=b32, block_size=s).item() for s in (1, 7, 65, n)]
    rel = lambda x: abs(x - ref) / abs(ref)  # noqa: E731
    return {
        "ours_float64": rel(ours64),
        "ours_float32": rel(ours32),
        "torch_chunked_float32": rel(torch32),
        "reference_float32": rel(full32),
        "ours_float32_block_spread": (max(blocks) - min(blocks)) / abs(ref),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--v", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-n", type=int, nargs="*", default=[2048, 32768], help="extra N for our peak memory")
    parser.add_argument("--memory-child", choices=IMPLS)
    parser.add_argument("--time-child", action="store_true")
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.threads[0], args.n, args.d, args.v)))
        return
    if args.time_child:
        print(json.dumps(time_child(args.threads[0], args.n, args.d, args.v, args.repeats)))
        return
    print(f"linear cross-entropy, N={args.n}, d={args.d}, V={args.v}, float32, CPU, no grad, torch {torch.__version__}")
    print(f"(the full logits: {args.n * args.v * 4 / 2**20:.0f} MiB)\n")
    print("| threads | implementation | median time | peer / ours | peak extra memory | loss sum |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        times = run_child(args, "--time-child", "--threads", str(threads))
        for name in IMPLS:
            row = run_child(args, "--memory-child", name, "--threads", str(threads))
            ratio = "-" if name == "ours" else f"{times[name] / times['ours']:.2f}x"
            print(f"| {threads} | {name} | {times[name] * 1e3:.0f} ms | {ratio} | {row['peak_mib']:.1f} MiB | "
                  f"{row['value']:.7g} |")  # fmt: skip
    for n in args.memory_n:
        row = run_child(argparse.Namespace(**{**vars(args), "n": n}), "--memory-child", "ours", "--threads", "1")
        logits = n * args.v * 4 / 2**20
        print(f"\nours at N={n}: peak extra memory {row['peak_mib']:.1f} MiB (the logits: {logits:.0f} MiB)")
    print("\nrelative error against F.cross_entropy(F.linear(h, W, b), t) in float64, N=2048:")
    for key, value in exactness(2048, args.d, args.v).items():
        print(f"  {key:28s} {value:.2e}")


if __name__ == "__main__":
    main()
