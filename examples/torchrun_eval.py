"""Evaluate one fixed, seeded data set with every metric class under torchrun: the values do not depend on N.

Run (CPU, gloo, on this machine only; N = 1, 2, 3, ... all print the same values):

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=N examples/torchrun_eval.py

Each rank builds the same data from a fixed seed, keeps an uneven contiguous shard of it (rank r gets a
share proportional to r + 1), feeds it to the metrics in batches of 64, and calls ``compute()``, which
sums the float64 state of every rank. Rank 0 prints one line, ``RESULT {json}``, with each metric's value
(``repr`` precision) and the shard sizes. The values equal one process's on the whole data to about
1e-15 relative: only the order of the float64 additions changes with N.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from itertools import pairwise

import torch
import torch.distributed as dist
from torchmetrics import Metric

from xent_metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)

NUM_SAMPLES, NUM_CLASSES, NUM_LABELS = 997, 5, 4
NUM_SEQUENCES, SEQ_LEN, VOCAB, IGNORE = 13, 11, 17, -100
BATCH = 64


def make_data(seed: int = 20261203) -> dict[str, torch.Tensor]:
    """The full data set, float64, identical on every rank (and in the test that checks the values)."""
    gen = torch.Generator().manual_seed(seed)
    n = NUM_SAMPLES
    weight = torch.rand(n, generator=gen, dtype=torch.float64) * 0.7
    weight[torch.rand(n, generator=gen) < 0.05] = 0.0  # zero weights drop out exactly
    binary = torch.randn(n, generator=gen, dtype=torch.float64) * 2.3
    binary[:7] = torch.tensor([40.0, -40.0, 35.5, -600.0, 600.0, 30.3, -30.3], dtype=torch.float64)
    multiclass = torch.randn(n, NUM_CLASSES, generator=gen, dtype=torch.float64) * 1.7
    multiclass[:5, 0] += torch.tensor([30.0, -30.0, 600.0, -600.0, 55.5], dtype=torch.float64)  # confident rows
    multilabel = torch.randn(n, NUM_LABELS, generator=gen, dtype=torch.float64) * 2.1
    rates = torch.tensor([0.1, 0.3, 0.5, 0.8], dtype=torch.float64)
    tokens = torch.randint(0, VOCAB, (NUM_SEQUENCES, SEQ_LEN), generator=gen)
    tokens[torch.rand(NUM_SEQUENCES, SEQ_LEN, generator=gen) < 0.15] = IGNORE  # padding
    return {
        "weight": weight,
        "binary_logits": binary,
        "binary_target": (torch.rand(n, generator=gen, dtype=torch.float64) < 0.3).long(),
        "multiclass_logits": multiclass,
        "multiclass_target": torch.randint(0, NUM_CLASSES, (n,), generator=gen),
        "multilabel_logits": multilabel,
        "multilabel_target": (torch.rand(n, NUM_LABELS, generator=gen, dtype=torch.float64) < rates).long(),
        "lm_logits": torch.randn(NUM_SEQUENCES, SEQ_LEN, VOCAB, generator=gen, dtype=torch.float64) * 3.1,
        "lm_target": tokens,
    }


def shard_bounds(length: int, world_size: int) -> list[int]:
    """Uneven contiguous shards: rank r gets a share proportional to r + 1."""
    total = world_size * (world_size + 1) // 2
    return [length * sum(range(1, r + 1)) // total for r in range(world_size + 1)]


def make_metrics() -> dict[str, Metric]:
    """Every metric class, one instance each."""
    return {
        "BinaryCrossEntropy": BinaryCrossEntropy(),
        "BinaryNormalizedEntropy": BinaryNormalizedEntropy(),
        "MulticlassCrossEntropy": MulticlassCrossEntropy(NUM_CLASSES),
        "MulticlassNormalizedEntropy": MulticlassNormalizedEntropy(NUM_CLASSES),
        "MultilabelCrossEntropy": MultilabelCrossEntropy(NUM_LABELS),
        "MultilabelNormalizedEntropy": MultilabelNormalizedEntropy(NUM_LABELS),
        "Perplexity": Perplexity(ignore_index=IGNORE),
    }


def evaluate(rank: int, world_size: int) -> tuple[dict[str, float], list[int]]:
    """Update every metric with this rank's shard, batch by batch; ``compute()`` (a collective) on all ranks."""
    data, metrics = make_data(), make_metrics()
    lo, hi = shard_bounds(NUM_SAMPLES, world_size)[rank : rank + 2]
    for start in range(lo, hi, BATCH):
        rows = slice(start, min(start + BATCH, hi))
        w = data["weight"][rows]
        for task in ("binary", "multiclass", "multilabel"):
            preds, target = data[f"{task}_logits"][rows], data[f"{task}_target"][rows]
            for name, metric in metrics.items():
                if name.lower().startswith(task):
                    metric.update(preds, target, sample_weight=w)
    seq_lo, seq_hi = shard_bounds(NUM_SEQUENCES, world_size)[rank : rank + 2]
    metrics["Perplexity"].update(data["lm_logits"][seq_lo:seq_hi], data["lm_target"][seq_lo:seq_hi])
    values = {name: float(metric.compute()) for name, metric in metrics.items()}
    bounds = shard_bounds(NUM_SAMPLES, world_size)
    return values, [b - a for a, b in pairwise(bounds)]


def main() -> None:
    """Join the process group torchrun set up (env://), evaluate, print on rank 0, leave the group."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only: one machine
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        values, shards = evaluate(rank, world_size)
        if rank == 0:
            print("RESULT " + json.dumps({"world_size": world_size, "shards": shards, "values": values}), flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
