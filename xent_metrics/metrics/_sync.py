"""One collective per sync: the ``sums`` state is reduced with a single ``all_reduce(SUM)``.

torchmetrics' default sync (its generic path, with ``gather_all_tensors``) costs, per tensor
state, a ``barrier``, an ``all_gather`` of the shapes, a host sync to compare them and an
``all_gather`` of the data, then stacks ``world_size`` copies and sums them. The state here is one
``(3, K)`` tensor whose reduction is a sum, so a single in-network ``all_reduce`` gives the same
numbers with one collective, ``3 K`` values on the wire per rank and no host sync. The metric's
sync hook (in :mod:`._torchmetrics`) calls :func:`summed_over_processes`.

When the collective fails (a peer crashed, or never called ``compute()`` and the process group's
timeout ran out), the error says which metric was syncing and why every rank must call ``compute()``,
above the backend's own message.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def summed_over_processes(sums: Tensor, group: Any | None, metric_name: str) -> Tensor:
    """Return ``sums`` summed over the process ``group`` (None: the whole world), with one ``all_reduce``.

    ``sums`` itself is never written (torchmetrics caches the pre-sync state): a copy is reduced.
    Every rank must call this: it is a collective. A failure names ``metric_name`` and the usual cause.
    """
    reduced = sums.clone()
    try:
        torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.SUM, group=group)
    except RuntimeError as err:  # gloo / NCCL failures and timeouts (torch.distributed.DistError is one)
        raise RuntimeError(_failure_message(metric_name, err)) from err
    return reduced


def _failure_message(metric_name: str, err: BaseException) -> str:
    """Name the metric, the collective and the usual cause above the backend's message."""
    return (
        f"{metric_name}.compute() could not sum its `sums` state over the process group "
        f"(all_reduce failed: {err}). compute() is a collective: every rank must call it, the same number of "
        "times. A rank that raised (for example on a rejected update) or skipped compute() leaves the others "
        "waiting until the process group's timeout; look for the first error in the other ranks' logs."
    )
