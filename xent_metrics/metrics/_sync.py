"""One collective per sync: the ``sums`` state is reduced with a single ``all_reduce(SUM)``.

torchmetrics' default sync (``Metric._sync_dist`` with ``gather_all_tensors``) costs, per tensor
state, a ``barrier``, an ``all_gather`` of the shapes, a host sync to compare them and an
``all_gather`` of the data, then stacks ``world_size`` copies and sums them. The state here is one
``(3, K)`` tensor whose reduction is a sum, so a single in-network ``all_reduce`` gives the same
numbers with one collective, ``3 K`` values on the wire per rank and no host sync.

When the collective fails (a peer crashed, or never called ``compute()`` and the process group's
timeout ran out), the error says which metric was syncing and why every rank must call ``compute()``,
above the backend's own message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from xent_metrics.metrics._state import STATE


def sync_dist(self: Any, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
    """Sum ``sums`` over the process group with one ``all_reduce``.

    A user-supplied ``dist_sync_fn`` (torchmetrics' ``dist_sync_fn`` argument) is honoured through
    torchmetrics' generic path. Every rank must call this (``compute()`` does): it is a collective.
    """
    if dist_sync_fn is not gather_all_tensors or set(self._reductions) != {STATE, self.__dict__.get("_config_state")}:
        Metric._sync_dist(self, dist_sync_fn, process_group=process_group)
        return
    reduced = self.sums.clone()  # the pre-sync state is cached by torchmetrics; never reduce it in place
    group = process_group or self.process_group
    try:
        torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.SUM, group=group)
    except RuntimeError as err:  # gloo / NCCL failures and timeouts (torch.distributed.DistError is one)
        raise RuntimeError(_failure_message(self, err)) from err
    self.sums = reduced


def _failure_message(metric: Any, err: BaseException) -> str:
    """Name the metric, the collective and the usual cause above the backend's message."""
    return (
        f"{type(metric).__name__}.compute() could not sum its `sums` state over the process group "
        f"(all_reduce failed: {err}). compute() is a collective: every rank must call it, the same number of "
        "times. A rank that raised (for example on a rejected update) or skipped compute() leaves the others "
        "waiting until the process group's timeout; look for the first error in the other ranks' logs."
    )
