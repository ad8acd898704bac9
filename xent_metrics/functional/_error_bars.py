r"""Error bars: the clustered standard error of a ratio of sums, from fixed-size mergeable float64 rows.

A metric value is a ratio ``R = sum_c Y_c / sum_c X_c`` over clusters ``c`` (one sample, or one
sequence, or one document): ``Y_c`` the cluster's weighted loss sum, ``X_c`` its denominator (its
weight sum, or its byte count for bits per byte). The delta method for a ratio, with the small-sample
correction, gives

.. math::
    \widehat{\mathrm{Var}}(R) = \frac{G}{G - 1} \, \frac{\sum_c (Y_c - R X_c)^2}{\left(\sum_c X_c\right)^2}

over the ``G`` clusters with a non-zero denominator or loss sum (a sequence with tokens but 0 bytes
counts: its loss is in ``R``; a cluster with neither adds nothing to any sum); one cluster per sample
with unit weights gives the textbook ``s / sqrt(n)``. The numerator is kept in a form that does not
cancel as the raw moments ``S_YY - 2 R S_XY + R^2 S_XX`` do: each cluster's loss is shifted by a
fixed reference ``r0`` chosen at construction (``log C`` for a ``C``-class task, ``log 2`` for binary
labels), ``Z_c = Y_c - r0 X_c``, and the rows ``S_XX``, ``S_XZ``, ``S_ZZ`` are kept, so that

.. math::
    \sum_c (Y_c - R X_c)^2 = S_{ZZ} - 2 d S_{XZ} + d^2 S_{XX}, \qquad d = R - r_0 .

Every row is a plain sum over clusters, so states add across batches and processes (one
``all_reduce``). The rows (:data:`ERROR_ROWS` of them, per column ``k``: class, label or total):

- ``CLUSTERS``: clusters with a non-zero denominator or loss in column ``k`` (``G``);
- ``ALL_CLUSTERS``: the clusters with a non-zero denominator or loss in any column, the same in each column
  (``macro`` reads it: its cross-column terms vanish when each cluster falls in one column,
  ``sum_k CLUSTERS_k == ALL_CLUSTERS``);
- ``XX``, ``XZ``, ``ZZ``: the shifted second moments.

Rounding: the standard error's relative error is up to about ``eps (d^2 + v) / v``, ``eps = 1.1e-16``,
``v`` the variance of the clusters' mean losses around ``R``; its absolute error about
``eps (d^2 + v) S_XX / (2 SE (sum_c X_c)^2)``, bounded by about ``sqrt(eps (d^2 + v) S_XX) / sum_c X_c``.
Measured: <= 2e-13 relative where ``|d| <= 0.5``, 3e-10 at ``|d| = 10``
(``benchmarks/error_bars_accuracy.py``), 1.2e-8 to 5e-8 where the clusters' mean losses barely differ
(``v ~ 1e-9``; absolute about 1e-14). See the docs page "How sure is this number?".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch
from torch import Tensor

from xent_metrics.functional._sums import BYTES, LOSS, WEIGHT

CLUSTERS, ALL_CLUSTERS, XX, XZ, ZZ = range(5)
#: The number of error-bar rows a metric with ``error_bars=True`` keeps below its sums.
ERROR_ROWS = 5
#: The interval's keys, in order.
KEYS = ("value", "stderr", "low", "high")


def cluster_moments(denominators: Tensor, losses: Tensor, reference: float) -> Tensor:
    """The ``(ERROR_ROWS, K)`` float64 error-bar rows of ``G`` clusters' ``(G, K)`` denominators and loss sums.

    ``reference`` is the fixed shift ``r0`` of the losses (the same for every state that is pooled).
    """
    x, y = denominators.double(), losses.double()
    z = y - reference * x
    counted = (x != 0) | (y != 0)  # a cluster with data: a denominator, or a loss over none (tokens, 0 bytes)
    present = counted.sum(0, dtype=torch.float64)
    every = counted.any(1).sum(dtype=torch.float64).expand_as(present)
    return torch.stack([present, every, (x * x).sum(0), (x * z).sum(0), (z * z).sum(0)])


def indexed_moments(x: Tensor, y: Tensor, column: Tensor, width: int, reference: float) -> Tensor:
    """:func:`cluster_moments` of ``N`` clusters that each fall in one column: ``(N,)`` values, ``column`` ``(N,)``.

    The same rows as the dense ``(N, width)`` form with zeros elsewhere, summed per column by one
    ``index_add_`` (the per-class rows of a multiclass batch, one cluster per row).
    """
    z = y - reference * x
    present = ((x != 0) | (y != 0)).double()
    terms = torch.stack([present, x * x, x * z, z * z])
    rows = torch.zeros(4, width, dtype=torch.float64, device=x.device).index_add_(1, column, terms)
    every = present.sum().expand(width)
    return torch.stack([rows[0], every, rows[1], rows[2], rows[3]])


def ratio_stderr(loss_sum: Tensor, denominator: Tensor, rows: Tensor, reference: float) -> tuple[Tensor, Tensor]:
    """The ratio ``loss_sum / denominator`` and its clustered standard error, per column, from error-bar ``rows``.

    ``nan`` where a column has no denominator; the standard error is ``nan`` with fewer than two clusters.
    """
    ratio = torch.where(denominator != 0, loss_sum / denominator, torch.nan)
    shift = ratio - reference
    numerator = (rows[ZZ] - 2 * shift * rows[XZ] + shift * shift * rows[XX]).clamp_min(0)
    clusters = rows[CLUSTERS]
    variance = clusters / (clusters - 1) * numerator / (denominator * denominator)
    return ratio, torch.where(clusters > 1, variance.sqrt(), torch.nan)


def macro_stderr(ratio: Tensor, stderr: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The mean of the per-column ratios that have data, and its standard error when cross-column terms vanish.

    They vanish where every cluster falls in exactly one column (``sum_k CLUSTERS_k == ALL_CLUSTERS``):
    the columns' estimates are then independent. Elsewhere ``ValueError``.
    """
    if bool(rows[CLUSTERS].sum() != rows[ALL_CLUSTERS, 0]):
        raise ValueError(
            "average='macro' has an interval only where each cluster falls in one column (class or label), e.g. "
            "one cluster per row with hard class-index targets (label smoothing allowed), or multilabel rows with "
            "weight in one label: here clusters span several columns, so the per-column estimates are correlated. "
            "Use average='micro', or average='none' for per-class intervals."
        )
    return independent_mean(ratio, stderr)


def independent_mean(ratio: Tensor, stderr: Tensor) -> tuple[Tensor, Tensor]:
    """The mean of the per-column ratios that are not ``nan``, and its standard error for independent columns."""
    valid = ~torch.isnan(ratio)
    count = valid.sum()
    value = torch.where(valid, ratio, 0).sum() / count
    variance = torch.where(valid, stderr * stderr, 0).sum() / (count * count)
    return value, variance.sqrt()


def normal_quantile(confidence: object) -> float:
    """The two-sided standard normal quantile ``z`` of a ``confidence`` in ``(0, 1)`` (1.96 for 0.95)."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise TypeError(f"`confidence` must be a float in (0, 1), e.g. 0.95, got {type(confidence).__name__}.")
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie strictly between 0 and 1, e.g. 0.95, got {confidence!r}.")
    return statistics.NormalDist().inv_cdf((1 + float(confidence)) / 2)


def interval(
    value: Tensor, stderr: Tensor, confidence: object, to_units: Callable[[Tensor], Tensor] | None = None
) -> dict[str, Tensor]:
    """``{"value", "stderr", "low", "high"}``: ``value +- z stderr`` on the loss scale, ends mapped by ``to_units``.

    ``stderr`` stays on the loss scale (nats); ``to_units`` (``exp`` for perplexity, a division by
    ``ln 2`` for bits) maps the value and both ends, which it keeps in order (it is increasing).
    """
    z = normal_quantile(confidence)
    low, high = value - z * stderr, value + z * stderr
    if to_units is not None:
        value, low, high = to_units(value), to_units(low), to_units(high)
    return {"value": value, "stderr": stderr, "low": low, "high": high}


def bits(values: Tensor) -> Tensor:
    """Nats to bits."""
    return values / math.log(2)


def dense_moments(x: Tensor, y: Tensor, reference: float, *, totals: bool) -> Tensor:
    """:func:`cluster_moments` of ``(G, K)`` values, or (``totals``) of the clusters' totals over the ``K`` columns.

    Totals (a micro mean of a per-label state) are kept in column 0, the other columns zero.
    """
    if not totals:
        return cluster_moments(x, y, reference)
    rows = torch.zeros(ERROR_ROWS, x.shape[1], dtype=torch.float64, device=x.device)
    rows[:, :1] = cluster_moments(x.sum(1, keepdim=True), y.sum(1, keepdim=True), reference)
    return rows


def with_error_rows(parts: Tensor, reference: float, *, totals: bool, per_byte: bool = False) -> Tensor:
    """A batch's sums with its error-bar rows below: ``parts`` holds the ``(G, R, K)`` sums of its ``G`` clusters.

    A cluster's denominator is its weight, or (``per_byte``) its byte count; ``totals`` as in
    :func:`dense_moments`.
    """
    x, y = parts[:, BYTES if per_byte else WEIGHT], parts[:, LOSS]
    return torch.cat([parts.sum(0), dense_moments(x, y, reference, totals=totals)])


def stderr_from_sums(
    sums: Tensor, reference: float, average: str = "micro", *, per_byte: bool = False
) -> tuple[Tensor, Tensor]:
    """The value (nats per weight, or per byte) and its standard error from sums with error-bar rows below.

    ``average``: ``"micro"`` reads the rows of column 0 (the totals), ``"none"`` every column,
    ``"macro"`` the mean of the columns (:func:`macro_stderr`). Per byte without token weight: ``nan``.
    """
    base, rows = sums[:-ERROR_ROWS], sums[-ERROR_ROWS:]
    loss, denominator = base[LOSS], base[BYTES if per_byte else WEIGHT]
    if average == "micro":
        value, stderr = ratio_stderr(loss.sum(), denominator.sum(), rows[:, 0], reference)
        if per_byte:  # bytes but no token weight: no value, as compute()
            no_tokens = base[WEIGHT].sum() == 0
            value, stderr = torch.where(no_tokens, torch.nan, value), torch.where(no_tokens, torch.nan, stderr)
        return value, stderr
    ratio, stderr = ratio_stderr(loss, denominator, rows, reference)
    return (ratio, stderr) if average == "none" else macro_stderr(ratio, stderr, rows)


def paired_rows(sums_a: Tensor, sums_b: Tensor, denominators: Tensor, differences: Tensor) -> Tensor:
    """The ``(2 R + ERROR_ROWS, 1)`` rows of a paired difference: both models' ``(R, K)`` sums and the clusters'.

    Column totals of model A's sums, then model B's, then the error rows of the ``(G,)`` differences
    ``D_c = Y_c(A) - Y_c(B)`` over the shared ``(G,)`` denominators ``X_c``, shifted by 0: differences are small.
    """
    moments = cluster_moments(denominators[:, None], differences[:, None], 0.0)
    return torch.cat([sums_a.sum(1, keepdim=True), sums_b.sum(1, keepdim=True), moments])


def paired_first(rows: Tensor) -> Tensor:
    """Model A's column totals in the rows of a paired difference (:func:`paired_rows`)."""
    return rows[: (rows.shape[0] - ERROR_ROWS) // 2]


def paired_stderr(rows: Tensor, *, per_byte: bool = False) -> tuple[Tensor, Tensor]:
    """The difference ``R_A - R_B`` (nats per weight or byte) and its paired standard error (:func:`paired_rows`)."""
    side = (rows.shape[0] - ERROR_ROWS) // 2
    a, b, moments = rows[:side], rows[side : 2 * side], rows[2 * side :]
    denominator = a[BYTES if per_byte else WEIGHT].sum()
    return ratio_stderr(a[LOSS].sum() - b[LOSS].sum(), denominator, moments[:, 0], 0.0)
