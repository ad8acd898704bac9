"""``HeadSumsMetric``: a softmax metric whose ``update`` also takes the hidden states of a linear head."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._cluster_sums import ClusterSums, first_of_cluster
from xent_metrics.functional._validation import Batch, HeadBatch
from xent_metrics.functional.linear import HeadTask
from xent_metrics.functional.multiclass import MulticlassTask
from xent_metrics.metrics._base import SumsMetric
from xent_metrics.metrics._error_bars import unexpected_keyword


class HeadSumsMetric(SumsMetric):
    """A softmax ``SumsMetric`` whose ``update`` also takes the hidden states of a linear head.

    A subclass holds its :class:`~xent_metrics.functional.multiclass.MulticlassTask` as ``task`` and
    sets ``_per_class`` (per-class sums, or their totals: the one place that is decided); scores
    (logits or probabilities) go through that task, ``update(hidden, target, linear_weight=W,
    linear_bias=b)`` through the :class:`~xent_metrics.functional.linear.HeadTask` of the same options.
    """

    task: MulticlassTask
    _cluster_keyword = True
    #: Whether a batch's sums are per class (``(3, C)``) or their totals (``(3, 1)``).
    _per_class: bool

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight: Tensor | None = None,
        linear_bias: Tensor | None = None,
    ) -> None:
        """Add a batch; with ``linear_weight``, ``preds`` is the hidden states ``(N, d)`` / ``(B, L, d)`` of a head.

        A batch that is refused changes nothing.
        """
        task, batch = self._task_and_batch(preds, target, sample_weight, linear_weight, linear_bias)
        self.sums.add_(task.sums(batch, per_class=self._per_class))

    def _batch_sums(
        self,
        preds: Tensor,
        target: Tensor,
        sample_weight: Tensor | None = None,
        *,
        linear_weight: Tensor | None = None,
        linear_bias: Tensor | None = None,
        **extra: Any,
    ) -> Tensor:
        """The batch's sums in the state's layout, as :meth:`update` adds them; the state is not touched."""
        task, batch = self._task_and_batch(preds, target, sample_weight, linear_weight, linear_bias)
        return self._with_extra_rows(task.sums(batch, per_class=self._per_class), target, **extra)

    def _task_and_batch(
        self, preds: Tensor, target: Tensor, sample_weight: object, linear_weight: object, linear_bias: object
    ) -> tuple[Any, Any]:
        """The task that takes the batch (scores: the metric's; hidden states: its head's) and the checked batch.

        The head's :class:`~xent_metrics.functional.linear.HeadTask` is built from the metric's task on
        the first hidden-state update and again whenever that task is replaced (a new weight, a move).
        """
        _validation.check_on_state_device(preds, self.sums)
        if linear_weight is None and linear_bias is None:
            return self.task, self._score_batch(preds, target, sample_weight)
        task = self.task
        if linear_weight is None:
            raise ValueError("`linear_bias` was given without `linear_weight`; pass the head's weight too.")
        if task.input_format != "logits":
            raise ValueError(
                f"`linear_weight` turns `preds` (hidden states) into logits, but this metric reads "
                f"input_format={task.input_format!r}; construct it with input_format='logits'."
            )
        source, head = self.__dict__.get("_head_task", (None, None))
        if source is not task:
            head = HeadTask(
                num_classes=task.num_classes,
                weight=task.weight,
                ignore_index=task.ignore_index,
                label_smoothing=task.label_smoothing,
                average=task.average,
                validate_args=task.validate_args,
            )
            self.__dict__["_head_task"] = (task, head)
        return head, head.check_batch(preds, linear_weight, target, linear_bias, sample_weight)

    def _cluster_batch(
        self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None, **extra: Any
    ) -> tuple[Tensor, ClusterSums, Tensor | None]:
        """The batch's sums, its clusters' loss and weight sums, and (bits per byte) the clusters' byte counts.

        A cluster is a row (index 0: a sample, or a sequence and its tokens), or the rows of equal
        ``cluster_ids``; the kernel adds each position to its cluster in its one pass.
        """
        cluster_ids, weight, bias = (extra.pop(name, None) for name in ("cluster_ids", "linear_weight", "linear_bias"))
        task, batch = self._task_and_batch(preds, target, sample_weight, weight, bias)
        sequences = target.shape[0] if target.ndim else 1
        rows_of = first_of_cluster(cluster_ids, sequences)
        counts = self._cluster_bytes(target, sequences, extra)
        if isinstance(batch, HeadBatch):  # flat tokens: a sequence's positions are its tokens
            shape = torch.Size([sequences, 1, batch.target.shape[0] // max(sequences, 1)])
            clusters = self._new_clusters(shape, batch.target.device, rows_of, hard=True)
        else:
            hard = batch.target.shape != batch.preds.shape
            clusters = self._new_clusters(batch.preds.shape, batch.preds.device, rows_of, hard=hard)
        sums = task.sums(batch, per_class=self._per_class, clusters=clusters)
        if counts is None:
            return sums, clusters, None
        counts = counts.to(device=sums.device, dtype=sums.dtype)
        if rows_of is not None:  # a cluster's bytes: its sequences'
            counts = torch.zeros_like(counts).index_add_(0, rows_of.to(sums.device), counts)
        return torch.cat([sums, counts.sum().reshape(1, 1)]), clusters, counts

    def _cluster_bytes(self, target: Tensor, sequences: int, extra: dict) -> Tensor | None:
        """Each sequence's byte count where a subclass takes them (none here: other keywords are refused)."""
        HeadSumsMetric._with_extra_rows(self, target, target, **extra)  # refuses any keyword
        return None

    def _with_extra_rows(self, sums: Tensor, target: Tensor, **extra: Any) -> Tensor:
        """The batch's ``(3, K)`` sums with the rows a subclass adds from its own ``update`` keywords (none here)."""
        if extra:
            raise unexpected_keyword(self, next(iter(extra)))
        return sums

    def _score_batch(self, preds: Tensor, target: Tensor, sample_weight: object) -> Batch:
        """Check a batch of scores (the task's ``check_batch``; a subclass may first reorder dimensions)."""
        return self.task.check_batch(preds, target, sample_weight)
