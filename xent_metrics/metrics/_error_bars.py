"""``error_bars=True``: the clustered standard error of a metric, from error-bar rows kept below its sums.

With ``error_bars=True`` a metric's ``sums`` state grows by
:data:`~xent_metrics.functional._error_bars.ERROR_ROWS` rows (the clusters and their shifted second
moments, :mod:`xent_metrics.functional._error_bars`), so the state is still one tensor summed by one
``all_reduce``, merged, saved and loaded through its layout (which names the error bars: a state
without the rows loads only into ``error_bars=False``). The default ``error_bars=False`` leaves the
state, the update and its cost exactly as they were: the error-bar update is bound in place of
``update`` at construction only when asked for.

An update with error bars runs the task's own ``sums`` step once, with a
:class:`~xent_metrics.functional._cluster_sums.ClusterSums` into which the kernel adds each position's
weighted loss and weight, by cluster, in the pass it makes anyway (one cluster per row, index 0 of
the batch: a sample, or a sequence of a ``(B, L, ...)`` batch; or the rows of equal ``cluster_ids``).
Every option (weights, ignored targets, smoothing, soft targets, hidden states) so means what it means
without error bars, and the extra work is a fixed number of ops per block: no host read, no
per-cluster loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from xent_metrics.functional import _error_bars, _validation
from xent_metrics.functional._cluster_sums import ClusterSums, cluster_sums
from xent_metrics.metrics import _torchmetrics

#: Why the normalized-entropy classes take no ``error_bars=True``.
NE_LIMITATION = (
    "normalized entropy is a ratio of ratios (the cross-entropy over the entropy of the base rate or class "
    "prior, both estimated), whose delta method needs cross terms these error-bar rows do not keep. Use the "
    "CrossEntropy class of the same options for an interval."
)


def unexpected_keyword(metric: object, name: str) -> TypeError:
    """The error for an ``update`` keyword a metric does not take; for ``cluster_ids``, which metric does."""
    owner = type(metric).__name__
    hint = ""
    if name == "cluster_ids" and getattr(metric, "_cluster_keyword", False):
        hint = f": `cluster_ids` is read only with error bars; construct {owner}(..., error_bars=True)"
    elif name == "cluster_ids":
        hint = (
            ": `cluster_ids` (several sequences of one document) is taken by MulticlassCrossEntropy and Perplexity "
            f"with error_bars=True; {owner} has one cluster per sample"
        )
    return TypeError(f"{owner}.update() got an unexpected keyword argument {name!r}{hint}.")


class ErrorBarsMixin:
    """``error_bars``, the error-bar update and ``compute_interval`` of every Metric class of this package."""

    #: Whether the state keeps error-bar rows (set by ``__init__``).
    _error_bars: bool = False
    #: The fixed shift ``r0`` of the clusters' losses (see :mod:`xent_metrics.functional._error_bars`).
    _error_reference: float = math.log(2)  # the binary and multilabel classes'; multiclass and Perplexity set theirs
    #: Whether an update takes ``cluster_ids`` (the softmax classes: several sequences of one document).
    _cluster_keyword: bool = False
    #: Why a class has no interval (normalized entropy), or None.
    _no_interval: str | None = None
    #: Whether a batch keeps each cluster's loss and denominator (``ClusterSums.totals``), as
    #: ``PairedDifference`` needs, where one position per cluster would otherwise add its error rows directly.
    _keep_clusters: bool = False
    sums: Tensor
    _rows: int
    task: Any

    def __init__(self, *, error_bars: bool = False, **kwargs: Any) -> None:
        _validation.check_flag("error_bars", error_bars)
        if error_bars and self._no_interval is not None:
            raise ValueError(f"error_bars=True is not available for {type(self).__name__}: {self._no_interval}")
        self.__dict__["_error_bars"] = error_bars  # before torchmetrics wraps `update` (`_update_to_wrap`)
        super().__init__(**kwargs)
        if error_bars and self._cluster_keyword:
            _torchmetrics.add_update_keyword(self, "cluster_ids")  # type: ignore[arg-type]  # routed by MetricCollection

    def _update_to_wrap(self, update: Callable) -> Callable:
        """With error bars, the error-bar update instead of the class's (wrapped on init and unpickling)."""
        return self._error_bars_update if self.__dict__.get("_error_bars") else update

    def _error_bars_update(self, *args: Any, **kwargs: Any) -> None:
        """Add a batch and its clusters' error-bar rows; a batch that is refused changes nothing."""
        self.sums.add_(self._error_batch_sums(*args, **kwargs))

    def _error_batch_sums(self, *args: Any, **kwargs: Any) -> Tensor:
        """The batch's sums with its error-bar rows below (the state's layout); the state is not touched."""
        sums, clusters, denominators = self._cluster_batch(*args, **kwargs)
        return torch.cat([sums, clusters.moments(self._error_reference, sums.shape[1], denominators)])

    @property
    def _totals(self) -> bool:
        """Whether the error-bar rows describe the clusters' totals over the columns (micro, per-label state)."""
        return self._average == "micro" and self.sums.shape[1] > 1

    @property
    def _average(self) -> str:
        """The task's ``average`` (binary: ``"micro"``, one label)."""
        return getattr(self.task, "average", "micro")

    @property
    def _per_byte(self) -> bool:
        """Whether a cluster's denominator is its byte count (``Perplexity``, bytes per update), not its weight."""
        return False

    def _global_byte_scale(self, sums: Tensor) -> Tensor | None:
        """The factor from nats per token weight to nats per byte of a global byte count (``Perplexity``), or None."""
        return None

    def _cluster_batch(
        self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None, **extra: Any
    ) -> tuple[Tensor, ClusterSums, Tensor | None]:
        """The batch's sums, its clusters' loss and weight sums (one per sample, index 0), and no byte counts."""
        if extra:
            raise unexpected_keyword(self, next(iter(extra)))
        _validation.check_on_state_device(preds, self.sums)
        batch = self.task.check_batch(preds, target, sample_weight)
        keep = self._totals or self._keep_clusters
        reference = None if keep else self._error_reference  # else a cluster per element of each label
        clusters = self._new_clusters(batch.preds.shape, batch.preds.device, reference=reference)
        return self.task.sums(batch, clusters=clusters), clusters, None

    def _new_clusters(
        self, shape: torch.Size, device: torch.device, rows_of: Tensor | None = None, *, hard: bool = False,
        reference: float | None = None,
    ) -> ClusterSums:
        """Empty cluster sums for a kernel's ``(rows, K, *positions)`` input (the state's columns, or totals).

        ``hard``: class-index targets, whose positions each fall in one class (kept beside the clusters
        where each cluster is one position).
        """
        width = 1 if self._totals else self.sums.shape[1]
        per_row = math.prod(shape[2:])
        columns = hard and width > 1 and rows_of is None and per_row == 1
        return cluster_sums(
            shape[0], per_row, width, device, clusters=rows_of, columns=columns, reference=reference
        )

    def compute_interval(self, confidence: float = 0.95) -> dict[str, Tensor]:
        r"""The value, its clustered standard error and a normal ``confidence`` interval, on every process.

        .. math::
            \mathrm{SE}(R)^2 = \frac{G}{G - 1} \frac{\sum_c (Y_c - R X_c)^2}{(\sum_c X_c)^2},
            \qquad R \pm z_{(1 + c)/2} \, \mathrm{SE}(R)

        over the ``G`` clusters with data (loss sums ``Y_c``, denominators ``X_c``, not both 0); the ends are
        mapped to the metric's units (``exp`` for perplexity, ``/ ln 2`` for bits). A collective, as
        ``compute``: every rank calls it. See the class's ``error_bars`` parameter for what a cluster is.

        Parameters
        ----------
        confidence : float in (0, 1), default=0.95
            The interval's coverage.

        Shape
        -----
        - Output: a dict of four tensors of shape ``()``, or ``(K,)`` with ``average="none"``.

        Returns
        -------
        dict
            ``{"value", "stderr", "low", "high"}``: ``stderr`` on the loss scale (nats), the others in
            the metric's units. ``stderr`` is ``nan`` with fewer than two clusters.

        Raises
        ------
        ValueError
            The metric was constructed without ``error_bars=True``; ``confidence`` outside ``(0, 1)``;
            ``average="macro"`` where clusters span several classes.

        Examples
        --------
        >>> import torch
        >>> from xent_metrics import BinaryCrossEntropy
        >>> metric = BinaryCrossEntropy(input_format="probs", error_bars=True)
        >>> metric.update(torch.tensor([0.9, 0.8, 0.6, 0.7]), torch.tensor([1, 1, 1, 1]))
        >>> {key: round(float(value), 4) for key, value in metric.compute_interval().items()}
        {'value': 0.2990, 'stderr': 0.0873, 'low': 0.1279, 'high': 0.4701}
        """
        if not self._error_bars:
            raise ValueError(
                f"{type(self).__name__}.compute_interval() needs the error-bar rows: construct the metric with "
                "error_bars=True."
            )
        _error_bars.normal_quantile(confidence)  # refused before the collective, on every rank alike
        return self._interval_from_sums(_torchmetrics.synced_sums(self), confidence)  # type: ignore[arg-type]

    def _interval_from_sums(self, sums: Tensor, confidence: float) -> dict[str, Tensor]:
        """The cross-entropy's interval (nats) from the state's sums for the task's ``average``."""
        value, stderr = _error_bars.stderr_from_sums(sums, self._error_reference, self._average)
        return _error_bars.interval(value, stderr, confidence)
