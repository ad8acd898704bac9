"""Coverage of the 95% intervals: clustered by sequence versus token level, correlated and independent tokens.

Each data set is ``--sequences`` sequences of ``--tokens`` tokens whose per-token loss is
``exp(s_c + t_ct)``, ``s_c ~ N(0, sd_s^2)`` shared by a sequence's tokens (``sd_s = 0``: independent
tokens), ``t_ct ~ N(0, 0.3^2)``; the true mean loss is ``exp(sd_s^2 / 2 + 0.045)``. The losses enter a
``BinaryCrossEntropy(input_format="probs", error_bars=True)`` as probabilities ``exp(-loss)`` of the
positive class: as ``(B, L)`` sequences (one cluster per sequence) and flattened ``(B * L,)`` (one
cluster per token, the i.i.d. interval). Prints the share of data sets whose interval holds the truth.

Run: ``PYTHONPATH=. python benchmarks/error_bars_coverage.py [--datasets 2000]``.
"""

from __future__ import annotations

import argparse
import math

import torch

from xent_metrics import BinaryCrossEntropy


def _covers(probs: torch.Tensor, truth: float) -> bool:
    metric = BinaryCrossEntropy(input_format="probs", error_bars=True)
    metric.update(probs, torch.ones(probs.shape, dtype=torch.long))
    out = metric.compute_interval(0.95)
    return bool(out["low"] <= truth <= out["high"])


def coverage(datasets: int, sequences: int, tokens: int, sd_sequence: float, seed: int = 0) -> tuple[float, float]:
    """The clustered and the token-level intervals' coverage over ``datasets`` seeded data sets."""
    gen = torch.Generator().manual_seed(seed)
    truth = math.exp(sd_sequence**2 / 2 + 0.3**2 / 2)
    clustered = token_level = 0
    for _ in range(datasets):
        shared = sd_sequence * torch.randn(sequences, 1, generator=gen, dtype=torch.float64)
        probs = torch.exp(-torch.exp(shared + 0.3 * torch.randn(sequences, tokens, generator=gen, dtype=torch.float64)))
        clustered += _covers(probs, truth)
        token_level += _covers(probs.reshape(-1), truth)
    return clustered / datasets, token_level / datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=2000)
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=64)
    options = parser.parse_args()
    print(f"{'tokens':12} {'sd of the sequence effect':>26} {'clustered':>10} {'token level':>12}")
    for sd in (0.0, 0.1, 0.3):
        clustered, token_level = coverage(options.datasets, options.sequences, options.tokens, sd)
        kind = "independent" if sd == 0 else "correlated"
        print(f"{kind:12} {sd:26.1f} {clustered:10.3f} {token_level:12.3f}")


if __name__ == "__main__":
    main()
