"""How many digits the error-bar rows keep: the standard error's relative spread across summation orders.

200 clusters (sequences) of 2048 tokens whose per-token losses have a per-sequence offset (so the
clusters differ); the clusters are split into random batches, in random order, and the rows summed
batch by batch as a metric does. The relative spread ``(max - min) / mean`` of the standard error over
the orders is printed for the raw moments (``r0 = 0``) and the shifted rows at several references
``r0`` (the package's: ``log C`` for classes, 2.5 nats for ``Perplexity``), with the value's
distance ``|R - r0|``.

Run: ``PYTHONPATH=. python benchmarks/error_bars_accuracy.py``.
"""

from __future__ import annotations

import math

import torch

from xent_metrics.functional import _error_bars


def _clusters(
    mean: float, offset: float, seed: int, count: int = 200, tokens: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster denominators (token counts) and loss sums, float64; ``offset``: the clusters' own spread."""
    gen = torch.Generator().manual_seed(seed)
    offsets = offset * torch.randn(count, 1, generator=gen, dtype=torch.float64)
    losses = (mean + offsets + torch.randn(count, tokens, generator=gen, dtype=torch.float64)).abs()
    return torch.full((count,), float(tokens), dtype=torch.float64), losses.sum(1)


def _stderr(x: torch.Tensor, y: torch.Tensor, reference: float, order: torch.Tensor, cuts: list[int]) -> float:
    """The standard error with clusters summed in ``order``, batch by batch at ``cuts``."""
    rows = torch.zeros(_error_bars.ERROR_ROWS, 1, dtype=torch.float64)
    loss, denominator = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    for part in torch.tensor_split(order, cuts):
        rows += _error_bars.cluster_moments(x[part, None], y[part, None], reference)
        loss, denominator = loss + y[part].sum(), denominator + x[part].sum()
    return float(_error_bars.ratio_stderr(loss, denominator, rows[:, 0], reference)[1])


def spread(mean: float, offset: float, reference: float, orders: int = 50) -> float:
    """The relative spread of the standard error over ``orders`` random orders and batch splits."""
    x, y = _clusters(mean, offset, seed=0)
    gen = torch.Generator().manual_seed(1)
    values = []
    for _ in range(orders):
        order = torch.randperm(x.shape[0], generator=gen)
        cuts = sorted(torch.randint(1, x.shape[0], (7,), generator=gen).tolist())
        values.append(_stderr(x, y, reference, order, cuts))
    return (max(values) - min(values)) / (sum(values) / len(values))


def main() -> None:
    print(f"{'mean loss R':>12} {'offset sd':>9} {'r0':>8} {'|R - r0|':>9} {'relative spread':>16}")
    for offset in (0.0, 0.3):
        for mean in (0.3, 3.0, 8.0):
            for reference in (0.0, 2.5, math.log(2), math.log(1000), math.log(32000)):
                value = spread(mean, offset, reference)
                print(f"{mean:12.2f} {offset:9.1f} {reference:8.3f} {abs(mean - reference):9.2f} {value:16.2e}")


if __name__ == "__main__":
    main()
