"""The cost of ``error_bars=True``: one update with error bars over the same update without, interleaved.

Ratios of the best of ``--repeats`` interleaved runs in one process (timings on a shared machine are
noisy: compare only ratios measured side by side). Run: ``PYTHONPATH=. python benchmarks/error_bars_overhead.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity


def _ratio(make: Callable[[bool], object], args: tuple, kwargs: dict, repeats: int) -> tuple[float, float]:
    """Best time with error bars over best time without, and the best time without (seconds)."""
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for error_bars in (False, True):
            metric = make(error_bars)
            start = time.perf_counter()
            metric.update(*args, **kwargs)  # type: ignore[attr-defined]
            best[error_bars] = min(best[error_bars], time.perf_counter() - start)
    return best[True] / best[False], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    gen = torch.Generator().manual_seed(0)
    ce = torch.randn(65536, 1000, generator=gen), torch.randint(0, 1000, (65536,), generator=gen)
    lm = torch.randn(16, 512, 1000, generator=gen), torch.randint(0, 1000, (16, 512), generator=gen)
    hidden = torch.randn(8, 256, 512, generator=gen), torch.randint(0, 8000, (8, 256), generator=gen)
    head = torch.randn(8000, 512, generator=gen) * 0.05
    labels = torch.randn(65536, 100, generator=gen), torch.randint(0, 2, (65536, 100), generator=gen)
    cases = {
        "CE (65536, 1000), one cluster per row": (lambda eb: MulticlassCrossEntropy(1000, error_bars=eb), ce, {}),
        "CE (65536, 1000) average='none'": (
            lambda eb: MulticlassCrossEntropy(1000, average="none", error_bars=eb), ce, {}
        ),
        "Perplexity (16, 512, 1000), per sequence": (lambda eb: Perplexity(error_bars=eb), lm, {}),
        "Perplexity hidden (8, 256, 512) x 8000, per sequence": (
            lambda eb: Perplexity(error_bars=eb), hidden, {"linear_weight": head}
        ),
        "Multilabel (65536, 100), one cluster per row": (
            lambda eb: MultilabelCrossEntropy(100, error_bars=eb), labels, {}
        ),
    }
    print(f"{'case':58} {'ratio':>7} {'without (s)':>12}")
    for name, (make, args, kwargs) in cases.items():
        ratio, base = _ratio(make, args, kwargs, options.repeats)
        print(f"{name:58} {ratio:7.2f} {base:12.4f}")


if __name__ == "__main__":
    main()
