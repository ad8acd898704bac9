"""``error_bars=True``: the clustered standard error of a metric, from error-bar rows kept below its sums.

With ``error_bars=True`` a metric's ``sums`` state grows by
:data:`~xent_metrics.functional._error_bars.ERROR_ROWS` rows (the clusters and their shifted second
moments, :mod:`xent_metrics.functional._error_bars`), so the state is still one tensor summed by one
``all_reduce``, merged, saved and loaded through its layout (which names the error bars: a state
without the rows loads only into ``error_bars=False``). The default ``error_bars=False`` leaves the
state, the update and its cost exactly as they were: the error-bar update is bound in place of
``update`` at construction only when asked for.

An update with error bars splits the checked batch into its clusters (one per row, index 0 of the
batch: a sample, or a sequence of a ``(B, L, ...)`` batch; or the rows of equal ``cluster_ids``) and
takes each cluster's sums with the task's own ``sums`` step, so every option (weights, ignored
targets, smoothing, soft targets, hidden states) means what it means without error bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from xent_metrics.functional import _error_bars, _row_losses, _validation
from xent_metrics.metrics import _torchmetrics

#: Why the normalized-entropy classes take no ``error_bars=True``.
NE_LIMITATION = (
    "normalized entropy is a ratio of ratios (the cross-entropy over the entropy of the base rate or class "
    "prior, both estimated), whose delta method needs cross terms these error-bar rows do not keep. Use the "
    "CrossEntropy class of the same options for an interval."
)


class ErrorBarsMixin:
    """``error_bars``, the error-bar update and ``compute_interval`` of every Metric class of this package."""

    #: Whether the state keeps error-bar rows (set by ``__init__``).
    _error_bars: bool = False
    #: The fixed shift ``r0`` of the clusters' losses (see :mod:`xent_metrics.functional._error_bars`).
    _error_reference: float = 0.0
    #: Whether an update takes ``cluster_ids`` (the softmax classes: several sequences of one document).
    _cluster_keyword: bool = False
    #: Whether a 2-D batch with one cluster per row takes the one-pass row path (else the per-cluster sums).
    _row_pass: bool = True
    #: Why a class has no interval (normalized entropy), or None.
    _no_interval: str | None = None
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
        parts = self._cluster_parts(*args, **kwargs)
        if isinstance(parts, tuple):  # (sums, error rows) of a batch with one cluster per row
            return torch.cat(parts)
        return _error_bars.with_error_rows(parts, self._error_reference, totals=self._totals, per_byte=self._per_byte)

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

    def _cluster_parts(
        self, preds: Tensor, target: Tensor, sample_weight: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The ``(G, 3, K)`` sums of the batch's clusters, one per sample (index 0 of the batch).

        2-D scores: the batch's sums and error rows at once, from each row's losses (one pass).
        """
        _validation.check_on_state_device(preds, self.sums)
        batch = self.task.check_batch(preds, target, sample_weight)
        reference, totals = self._error_reference, self._totals
        rows = None
        if self._row_pass:
            rows = _row_losses.label_rows(
                self.task, batch, lambda x, y: _error_bars.dense_moments(x, y, reference, totals=totals)
            )
        if rows is not None:
            return rows
        groups = _error_bars.cluster_groups(None, len(batch[0]))
        return stacked(lambda rows: self.task.sums(sliced(batch, rows)), groups)

    def compute_interval(self, confidence: float = 0.95) -> dict[str, Tensor]:
        r"""The value, its clustered standard error and a normal ``confidence`` interval, on every process.

        .. math::
            \mathrm{SE}(R)^2 = \frac{G}{G - 1} \frac{\sum_c (Y_c - R X_c)^2}{(\sum_c X_c)^2},
            \qquad R \pm z_{(1 + c)/2} \, \mathrm{SE}(R)

        over the ``G`` clusters with weight (loss sums ``Y_c``, denominators ``X_c``); the ends are
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


def sliced(batch: tuple, rows: slice | Tensor, skip: tuple[int, ...] = ()) -> tuple:
    """A checked batch's rows ``rows`` (index 0 of every tensor but those at ``skip``; ``None`` stays ``None``)."""
    parts = [
        part if part is None or at in skip else (part[rows] if isinstance(rows, slice) else part.index_select(0, rows))
        for at, part in enumerate(batch)
    ]
    return type(batch)(*parts)


def stacked(sums_of: Callable[[slice | Tensor], Tensor], groups: list[slice] | list[Tensor]) -> Tensor:
    """The ``(G, R, K)`` stack of ``sums_of(rows)`` over the clusters' ``groups`` of rows."""
    if not groups:  # an empty batch: no cluster
        return sums_of(slice(0, 0))[None][:0]
    return torch.stack([sums_of(rows) for rows in groups])
