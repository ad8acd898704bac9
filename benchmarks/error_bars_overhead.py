"""The cost of ``error_bars=True``: one update with error bars over the same update without, interleaved.

The median of ``--repeats`` ratios of adjacent runs in one process, one thread, the order alternating
(timings on a shared machine are noisy: compare only ratios measured side by side). The issue's cases are CE
``(65536, 1000)`` (one cluster per row, also ``average="none"``) and hidden states ``(8192, 512)`` with
``d = 512`` and a 32000-token head; the hidden-state case runs here on ``--sequences`` sequences of
that shape (a CPU projects about one such sequence a second; the extra work per token is the same).
Run: ``PYTHONPATH=. python benchmarks/error_bars_overhead.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from xent_metrics import MulticlassCrossEntropy, MultilabelCrossEntropy, Perplexity

Case = tuple[Callable[[bool], object], tuple, dict]


def _ratio(case: Case, repeats: int) -> tuple[float, float]:
    """The median over ``repeats`` adjacent pairs of (time with error bars / time without), and the median without.

    The pairs alternate which of the two runs first, so neither gains from running second (warm caches,
    memory just freed) or loses to a burst of load on the shared machine.
    """
    make, args, kwargs = case
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats):
        for error_bars in (False, True) if repeat % 2 == 0 else (True, False):
            metric = make(error_bars)
            start = time.perf_counter()
            metric.update(*args, **kwargs)  # type: ignore[attr-defined]
            times[error_bars].append(time.perf_counter() - start)
    ratios = [with_bars / without for with_bars, without in zip(times[True], times[False], strict=True)]
    return statistics.median(ratios), statistics.median(times[False])


def _cases(sequences: int) -> dict[str, Case]:
    """The measured updates, by name."""
    gen = torch.Generator().manual_seed(0)
    ce = torch.randn(65536, 1000, generator=gen), torch.randint(0, 1000, (65536,), generator=gen)
    lm = torch.randn(16, 512, 1000, generator=gen), torch.randint(0, 1000, (16, 512), generator=gen)
    docs = torch.tensor([3, 1, 3, 0, 1, 1, 2, 0, 3, 2, 2, 0, 1, 3, 0, 2])
    hidden = torch.randn(sequences, 512, 512, generator=gen), torch.randint(0, 32000, (sequences, 512), generator=gen)
    head = {"linear_weight": torch.randn(32000, 512, generator=gen) * 0.05}
    labels = torch.randn(65536, 100, generator=gen), torch.randint(0, 2, (65536, 100), generator=gen)
    return {
        "CE (65536, 1000), one cluster per row": (lambda eb: MulticlassCrossEntropy(1000, error_bars=eb), ce, {}),
        "CE (65536, 1000) average='none'": (
            lambda eb: MulticlassCrossEntropy(1000, average="none", error_bars=eb), ce, {}
        ),
        f"Perplexity hidden ({sequences}, 512, 512) x 32000, per sequence": (
            lambda eb: Perplexity(error_bars=eb), hidden, head
        ),
        "Perplexity (16, 512, 1000), per sequence": (lambda eb: Perplexity(error_bars=eb), lm, {}),
        "Perplexity (16, 512, 1000), cluster_ids": (_with_ids(docs), lm, {}),
        "Multilabel (65536, 100), one cluster per row": (
            lambda eb: MultilabelCrossEntropy(100, error_bars=eb), labels, {}
        ),
        "Multilabel (65536, 100) average='none'": (
            lambda eb: MultilabelCrossEntropy(100, average="none", error_bars=eb), labels, {}
        ),
    }


def _with_ids(docs: torch.Tensor) -> Callable[[bool], object]:
    """A Perplexity whose error-bar update gets ``cluster_ids`` (the plain one cannot take them)."""

    def make(error_bars: bool) -> object:
        metric = Perplexity(error_bars=error_bars)
        if not error_bars:
            return metric
        update = metric.update
        metric.update = lambda *args, **kwargs: update(*args, cluster_ids=docs, **kwargs)  # type: ignore[method-assign]
        return metric

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sequences", type=int, default=1)
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    print(f"{'case':58} {'ratio':>7} {'without (s)':>12}")
    for name, case in _cases(options.sequences).items():
        if options.only in name:
            ratio, base = _ratio(case, options.repeats)
            print(f"{name:58} {ratio:7.2f} {base:12.4f}", flush=True)


if __name__ == "__main__":
    main()
