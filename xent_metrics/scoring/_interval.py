"""``cross_entropy_interval``: the cross-entropy with its clustered standard error and a confidence interval."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from xent_metrics.functional import _error_bars, _validation
from xent_metrics.scoring._inputs import MULTILABEL, SCORE_FORMATS, ScoreBatch, score_batch, target_type
from xent_metrics.scoring._label_sums import batch_sums


def _group_rows(groups: object, num_samples: int) -> list[Tensor]:
    """The sample indices of each group (cluster); one per sample without ``groups``."""
    if groups is None:
        return [torch.tensor([row]) for row in range(num_samples)]
    if np.isscalar(groups) or not hasattr(groups, "__len__"):
        raise TypeError(f"`groups` must be an array-like of shape ({num_samples},) or None, got {groups!r}.")
    labels = np.asarray(groups)
    if labels.shape != (num_samples,):
        raise ValueError(
            f"`groups` must have shape ({num_samples},), one group label per sample (as GroupKFold's), got "
            f"{labels.shape}."
        )
    _, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return [torch.from_numpy(rows) for rows in np.split(order, np.cumsum(np.bincount(inverse))[:-1])]


def _rows_of(batch: ScoreBatch, rows: Tensor) -> ScoreBatch:
    """The samples ``rows`` of a checked batch."""
    scores = [out[rows] for out in batch.scores] if isinstance(batch.scores, list) else batch.scores[rows]
    weight = None if batch.sample_weight is None else batch.sample_weight[rows]
    return batch._replace(scores=scores, target=batch.target[rows], sample_weight=weight)


def cross_entropy_interval(
    y_true: object,
    y_proba: object,
    *,
    groups: object = None,
    confidence: float = 0.95,
    labels: object = None,
    sample_weight: object = None,
    input_format: str = "probs",
) -> dict[str, float]:
    r"""The cross-entropy of :func:`cross_entropy_loss`, its clustered standard error and a normal interval.

    With ``Y_g`` the weighted loss sum of group ``g`` and ``X_g`` its weight sum (summed over labels
    for a multilabel indicator), ``R = sum_g Y_g / sum_g X_g`` and

    .. math::
        \mathrm{SE}(R) = \sqrt{\frac{G}{G - 1} \,
        \frac{\sum_g (Y_g - R X_g)^2}{\left(\sum_g X_g\right)^2}},
        \qquad R \pm z_{(1 + c)/2} \, \mathrm{SE}(R)

    over the ``G`` groups with weight (the delta method for a ratio, with the small-sample
    correction). Without ``groups`` each sample is its own group: with unit weights the standard
    error is the textbook ``s / sqrt(n)``.

    Parameters
    ----------
    y_true, y_proba, labels, sample_weight, input_format
        As in :func:`cross_entropy_loss` (``average="micro"``, ``normalize=True``).
    groups : array-like of shape (n_samples,), optional
        The cluster of each sample (as ``GroupKFold``'s ``groups``): samples of one group (the
        sentences of one document, the images of one patient) are correlated, so the group, not the
        sample, is the unit of the standard error. Default: every sample its own group.
    confidence : float in (0, 1), default=0.95
        The interval's coverage; ``z`` is the standard normal quantile of ``(1 + confidence) / 2``.

    Shape
    -----
    - ``y_true``, ``y_proba``, ``sample_weight``: as in :func:`cross_entropy_loss`.
    - ``groups``: ``(n_samples,)``.
    - Output: a dict of four floats, each of shape ``()``.

    Returns
    -------
    dict
        ``{"value", "stderr", "low", "high"}``: the cross-entropy (nats), its standard error,
        ``value -+ z * stderr``. ``stderr`` is ``nan`` with fewer than two groups.

    Raises
    ------
    TypeError
        ``groups`` or ``confidence`` of the wrong type.
    ValueError
        ``groups`` of another length than ``y_true``, ``confidence`` outside ``(0, 1)``, and the
        errors of :func:`cross_entropy_loss`.

    See Also
    --------
    cross_entropy_loss : The value alone.
    xent_metrics.MulticlassCrossEntropy : ``error_bars=True`` gives the same interval over batches.

    Examples
    --------
    >>> from xent_metrics.scoring import cross_entropy_interval
    >>> out = cross_entropy_interval([1, 0, 1, 1], [[.2, .8], [.7, .3], [.4, .6], [.1, .9]])
    >>> {key: round(value, 4) for key, value in out.items()}
    {'value': 0.299, 'stderr': 0.0873, 'low': 0.1279, 'high': 0.4701}
    >>> out = cross_entropy_interval([1, 0, 1, 1], [[.2, .8], [.7, .3], [.4, .6], [.1, .9]], groups=[0, 0, 1, 1])
    >>> round(out["stderr"], 4)  # two documents of two samples: the sample std of their mean losses / sqrt(2)
    0.0091
    """
    _validation.check_format_and_average(input_format, "micro", SCORE_FORMATS)
    _error_bars.normal_quantile(confidence)
    kind = target_type(y_true)
    batch = score_batch(kind, y_true, y_proba, labels, sample_weight, input_format)
    groups_rows = _group_rows(groups, int(batch.target.shape[0]))
    parts = torch.stack([batch_sums(_rows_of(batch, rows)) for rows in groups_rows])
    reference = math.log(2) if kind == MULTILABEL else math.log(max(parts.shape[2], 2))
    rows = _error_bars.with_error_rows(parts, reference, totals=True)
    value, stderr = _error_bars.stderr_from_sums(rows, reference)
    return {key: float(entry) for key, entry in _error_bars.interval(value, stderr, confidence).items()}
