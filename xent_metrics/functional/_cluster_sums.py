"""Per-cluster loss and denominator sums, collected by the kernels during the pass they already make.

A metric with error bars hands a kernel's ``sums`` step a :class:`ClusterSums`; each block of the
kernel adds the weighted loss and the weight of its positions (the ones it adds to the batch's sums)
to their cluster's row of a float64 buffer with one ``index_add_`` (or a slice ``add_`` where the
clusters are the positions themselves). The buffer is ``(2, G, W)``: loss and denominator of each of
the ``G`` clusters in each of ``W`` columns (one column for totals). No host read, no data-dependent
shape: a fixed number of ops per block, the same on every device.

Where each cluster receives one position (one cluster per row of ``(N, C)`` scores, hard targets,
per-class columns), the buffer keeps one column and the cluster's class beside it in ``columns``,
so the memory is ``O(N)``, not ``O(N C)``; the error rows are then summed per class by
:func:`~xent_metrics.functional._error_bars.indexed_moments`.

``cluster_ids`` (several sequences of one document) map each sequence to the first sequence with an
equal id (a ``(B, B)`` comparison: ``B`` is small); the other sequences' clusters stay empty (zero
denominator), which the error rows do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from xent_metrics.functional._error_bars import ERROR_ROWS, cluster_moments, indexed_moments


@dataclass(frozen=True)
class ClusterSums:
    """Where a kernel adds its positions' ``(loss, denominator)``: their cluster's row of ``values``.

    ``values`` ``(2, G, W)`` float64; ``columns`` ``(G,)`` the class of each cluster where each holds one
    position (``W == 1`` then), else ``None``; ``slots`` ``(P,)`` the cluster of each position of the
    kernel's input, ``None`` where position ``p`` is cluster ``p``; ``per_row`` positions per row (index 0)
    of the kernel's input.
    """

    values: Tensor
    columns: Tensor | None
    slots: Tensor | None
    per_row: int = 1
    #: Where each (row, label) is a cluster of its label's column: the error rows, added block by block, and
    #: the shift ``r0`` they use (a 2-D multilabel batch with ``average="none"``: no ``(N, K)`` buffer).
    elements: Tensor | None = None
    reference: float = 0.0
    #: A float64 block of the kernel's losses, reused block after block (a fresh one costs more than the copy).
    scratch: list[Tensor] = field(default_factory=list)

    def take(self, rows: slice | Tensor) -> ClusterSums:
        """The clusters of the positions ``rows`` (a kernel called on part of the positions, e.g. a head's block)."""
        if self.slots is not None:
            return replace(self, slots=self.slots[rows], per_row=1)
        if isinstance(rows, slice):
            rows = torch.arange(rows.start, rows.stop, device=self.values.device)
        return replace(self, slots=rows, per_row=1)

    def add(self, rows: slice, loss: Tensor, weight: Tensor | None, column: Tensor | None = None) -> None:
        """Add the positions of the kernel's rows ``rows``: ``(m,)`` or ``(m, K)`` losses and weights (``None``: 1).

        ``column`` ``(m,)`` is each position's class, for ``(m,)`` values where the clusters keep classes.
        """
        width, wide = self.values.shape[2], torch.float64
        if loss.ndim == 2 and width == 1:  # the clusters' totals over the columns
            count, loss = loss.shape[1], loss.sum(1, dtype=wide)
            weight = torch.full_like(loss, count) if weight is None else weight.sum(1, dtype=wide)
        elif weight is None:
            weight = torch.ones_like(loss, dtype=wide)
        loss = loss if loss.dtype == wide else loss.to(wide)
        start, stop = rows.start * self.per_row, rows.stop * self.per_row
        index = self.slots[start:stop] if self.slots is not None else None
        if self.columns is not None and column is not None:
            if index is None:
                self.columns[start:stop] = column
            else:
                self.columns.index_copy_(0, index, column)
        if column is not None and width > 1:  # (m,) values of classes: each to its own slot of the flat (G * W)
            flat = self.values.view(2, -1)
            base = torch.arange(start, stop, device=loss.device) if index is None else index
            flat.index_add_(1, base * width + column, torch.stack([loss, weight]))
            return
        pair = torch.stack([loss, weight]).view(2, loss.shape[0], -1)
        if index is None:
            self.values[:, start:stop] += pair
        else:
            self.values.index_add_(1, index, pair)

    def add_labels(
        self, rows: slice, loss: Tensor, keep: Tensor | None, weight: Tensor | None, *, widened: bool = False
    ) -> None:
        """Add a binary block: ``(m, K)`` elementwise losses, entries ``keep`` (``None``: all), row weights ``(m,)``.

        The weights are shared by a row's labels, so a cluster's rows need no ``(m, K)`` weight matrix: the
        totals of a row are its loss sum and kept count times its weight; the error rows of one cluster per
        element are ``sum w^2 k``, ``sum w^2 e``, ``sum w^2 e^2`` with ``e = k (loss - r0)``. ``widened``:
        ``loss`` is a float64 scratch block of the kernel's, which may be overwritten.
        """
        e = loss if widened else self._wide(loss)
        if keep is not None:
            e.masked_fill_(~keep, 0)
        if weight is not None:  # a zero weight removes a row exactly, even one whose loss is inf
            e.masked_fill_((weight == 0)[:, None], 0)
        if self.elements is None:  # the rows' totals (or per-label rows of grouped positions)
            count = torch.full_like(e[:, 0], e.shape[1]) if keep is None else keep.sum(1, dtype=torch.float64)
            if self.values.shape[2] == 1:
                loss_of, weight_of = e.sum(1), count
            else:
                loss_of, weight_of = e, torch.ones_like(e) if keep is None else keep.to(e.dtype)
            if weight is not None:
                scale = weight if loss_of.ndim == 1 else weight[:, None]
                loss_of, weight_of = loss_of * scale, weight_of * scale
            self.add(rows, loss_of, weight_of)
            return
        self._add_elements(e, keep, weight)

    def _wide(self, loss: Tensor) -> Tensor:
        """A float64 copy of a ``(m, K)`` block of losses, in the reused scratch block."""
        if not self.scratch or self.scratch[0].shape[0] < loss.shape[0] or self.scratch[0].shape[1] != loss.shape[1]:
            self.scratch[:] = [torch.empty(loss.shape, dtype=torch.float64, device=loss.device)]
        return self.scratch[0][: loss.shape[0]].copy_(loss)

    def _add_elements(self, e: Tensor, keep: Tensor | None, weight: Tensor | None) -> None:
        """Error rows of ``(m, K)`` single-element clusters: ``e`` the kept entries' losses, unshifted."""
        if keep is None and weight is None:  # unit weights: every element is a cluster of weight 1
            count = torch.full_like(e[0], e.shape[0])
            xz = e.sub_(self.reference).sum(0)
            self.elements.add_(torch.stack([count, count, count, xz, e.square_().sum(0)]))  # type: ignore[union-attr]
            return
        kept = torch.ones_like(e) if keep is None else keep.to(e.dtype)
        if weight is not None:
            kept = kept * (weight != 0)[:, None]
        e = e.sub_(self.reference).mul_(kept)  # z / w
        v = None if weight is None else weight * weight
        if v is None:
            xx, xz, zz = kept.sum(0), e.sum(0), (e * e).sum(0)
        else:
            xx, xz, zz = v @ kept, v @ e, v @ (e * e)
        present = kept.sum(0)
        every = (kept != 0).any(1).sum(dtype=torch.float64).expand_as(present)
        self.elements.add_(torch.stack([present, every, xx, xz, zz]))  # type: ignore[union-attr]

    def moments(self, reference: float, width: int, denominators: Tensor | None = None) -> Tensor:
        """The ``(ERROR_ROWS, width)`` error rows of the clusters (:func:`~._error_bars.cluster_moments`).

        ``denominators`` ``(G,)`` replace the clusters' weights (their bytes); a single column of totals
        is padded with zeros to ``width``.
        """
        if self.elements is not None:
            return self.elements
        loss, x = self.values[0], self.values[1]
        if denominators is not None:
            x = denominators.to(x.dtype)[:, None]
        if self.columns is not None:
            return indexed_moments(x[:, 0], loss[:, 0], self.columns, width, reference)
        rows = cluster_moments(x, loss, reference)
        if rows.shape[1] == width:
            return rows
        return torch.cat([rows, rows.new_zeros(ERROR_ROWS, width - rows.shape[1])], 1)

    def totals(self, denominators: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Each cluster's ``(G,)`` denominator (its weight, or ``denominators``) and loss, summed over the columns."""
        x = self.values[1].sum(1) if denominators is None else denominators.to(self.values.dtype)
        return x, self.values[0].sum(1)


def cluster_sums(
    rows: int, per_row: int, width: int, device: torch.device, *, clusters: Tensor | None = None,
    columns: bool = False, reference: float | None = None,
) -> ClusterSums:
    """Empty :class:`ClusterSums` for a kernel's ``rows`` rows of ``per_row`` positions each.

    ``clusters`` ``(rows,)``: the cluster of each row (:func:`first_of_cluster`), else one per row.
    ``columns``: each cluster holds one position, its class kept beside (one cluster per position).
    ``reference``: each element of a ``(rows, width)`` block is a cluster of its column; its error rows
    (shifted by ``reference``) are added block by block.
    """
    if reference is not None and clusters is None and per_row == 1:
        elements = torch.zeros(ERROR_ROWS, width, dtype=torch.float64, device=device)
        values = torch.zeros(2, 0, width, dtype=torch.float64, device=device)
        return ClusterSums(values, None, None, elements=elements, reference=reference)
    count = rows if clusters is None else clusters.shape[0]
    slots = None
    if clusters is not None or per_row != 1:
        rows_of = torch.arange(rows, device=device) if clusters is None else clusters.to(device)
        slots = rows_of.repeat_interleave(per_row) if per_row != 1 else rows_of
    values = torch.zeros(2, count, 1 if columns else width, dtype=torch.float64, device=device)
    kept = torch.zeros(count, dtype=torch.long, device=device) if columns else None
    return ClusterSums(values, kept, slots, per_row)


def first_of_cluster(cluster_ids: object, rows: int) -> Tensor | None:
    """The first row with an equal id, for each row of a batch; ``None`` without ``cluster_ids`` (one per row).

    ``cluster_ids`` is an integer tensor of shape ``(rows,)`` mapping each row (sequence) of the batch to
    its cluster (document); any integer labels, in any order. A cluster lies within one update.
    """
    if cluster_ids is None:
        return None
    if not isinstance(cluster_ids, Tensor) or cluster_ids.is_floating_point() or cluster_ids.is_complex() or (
        cluster_ids.dtype == torch.bool
    ):
        seen = cluster_ids.dtype if isinstance(cluster_ids, Tensor) else type(cluster_ids).__name__
        raise TypeError(f"`cluster_ids` must be an integer tensor, one cluster (document) id per sequence; got {seen}.")
    if tuple(cluster_ids.shape) != (rows,):
        raise ValueError(
            f"`cluster_ids` must have shape ({rows},), one id per sequence (index 0 of the batch), got shape "
            f"{tuple(cluster_ids.shape)}."
        )
    if not rows:  # no sequence (argmax needs a row to reduce)
        return torch.zeros(0, dtype=torch.long, device=cluster_ids.device)
    equal = cluster_ids[:, None] == cluster_ids[None, :]
    return equal.to(torch.uint8).argmax(1)  # the first maximum: the first row of the cluster
