"""``d2_cross_entropy_score``: scikit-learn inputs in, the functional core's D² (``1 - NE``) out."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._sums import d2_from_sums, multiclass_d2_from_sums
from xent_metrics.scoring._inputs import MULTILABEL, SCORE_FORMATS, score_batch, target_type
from xent_metrics.scoring._label_sums import batch_sums


def _check_no_negative_weight(sample_weight: object) -> None:
    """D² compares with the weighted class prior, which must be a distribution: no weight below 0."""
    if sample_weight is None:
        return
    low = float(np.min(np.asarray(sample_weight, dtype=np.float64)))
    if low < 0:
        raise ValueError(
            f"`sample_weight` must be >= 0 for a D² score (the weighted class prior must be a distribution), got a "
            f"minimum of {low:.6g}."
        )


def d2_cross_entropy_score(
    y_true: object,
    y_proba: object,
    *,
    labels: object = None,
    sample_weight: object = None,
    input_format: str = "probs",
    average: str | None = "micro",
) -> float | np.ndarray:
    r"""D² score: the fraction of cross-entropy explained over the class-prior baseline, ``1 - NE``.

    .. math::
        D^2 = 1 - \frac{\sum_i w_i \ell_i}{\sum_i w_i \ell^{\mathrm{prior}}_i} = 1 - \mathrm{NE}

    where :math:`\ell_i` is the cross-entropy of sample :math:`i` and :math:`\ell^{\mathrm{prior}}_i`
    that of the constant predictor giving every sample the weighted class prior (per label, the
    weighted base rate, for multilabel). 1 is perfect, 0 is no better than the prior, below 0 worse.
    Binary and multiclass: equal to :func:`sklearn.metrics.d2_log_loss_score` (to 1e-12) on every
    input both accept. Multilabel indicator targets and logits, which scikit-learn does not score,
    are scored per label with the binary cross-entropy and through log-sum-exp / softplus.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Class labels, or a multilabel indicator matrix of 0 and 1.
    y_proba : array-like of shape (n_samples,), (n_samples, n_classes) or (n_samples, n_labels), or list
        Scores read as ``input_format`` says, laid out as in :func:`cross_entropy_loss`.
    labels : array-like or list of array-like, optional
        As in :func:`cross_entropy_loss`: all the classes, sorted as the columns of ``y_proba``. A
        class of ``labels`` absent from ``y_true`` has prior 0.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weight of each sample; it weights the class prior too.
    input_format : {"probs", "logits", "log_probs"}, default="probs"
        As in :func:`cross_entropy_loss` (probabilities are clipped to ``[eps, 1 - eps]``).
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        Binary / multiclass: ``"micro"`` only. Multilabel: ``"micro"`` is one minus the summed loss
        over the summed loss of the per-label base rates; ``"macro"`` the mean of the per-label
        D²; ``"none"`` the per-label D² array.

    Shape
    -----
    - ``y_true``, ``y_proba``, ``sample_weight``: as in :func:`cross_entropy_loss`.
    - Output: a float, or ``(n_labels,)`` with ``average="none"``.

    Returns
    -------
    float or ndarray of shape (n_labels,)
        The D² score; ``nan`` (with a warning) where the prior has zero entropy (one class in
        ``y_true``, with ``labels`` given; a label always or never on).

    Raises
    ------
    ValueError
        What :func:`cross_entropy_loss` raises, a negative ``sample_weight``, ``average`` other than
        ``"micro"`` for class labels, an unknown option.
    TypeError
        ``sample_weight`` not array-like.

    See Also
    --------
    cross_entropy_loss : The loss in the numerator.
    xent_metrics.functional.multiclass_normalized_entropy : ``1 - D²`` on tensors.

    Notes
    -----
    The math is :mod:`xent_metrics.functional`'s: float64 sums per class, then ``1 - NE``. The prior's
    loss is its exact entropy; scikit-learn clips the prior to ``[eps, 1 - eps]``, which differs only
    where a class's prior is within ``eps`` of 0 or 1: there scikit-learn returns a huge negative
    number from a near-zero denominator, here a zero-entropy prior gives ``nan`` and a warning.

    Examples
    --------
    >>> from xent_metrics.scoring import d2_cross_entropy_score
    >>> d2_cross_entropy_score(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]])
    0.6881
    >>> d2_cross_entropy_score([[1, 0], [0, 1], [1, 1]], [[.9, .2], [.3, .6], [.7, .7]], average="none")
    array([0.5713, 0.4288])
    >>> d2_cross_entropy_score([1, 0, 1], [2.0, -1.0, 0.3], input_format="logits")
    0.4792
    """
    average = _validation.check_format_and_average(input_format, average, SCORE_FORMATS)
    kind = target_type(y_true)
    check_d2_average(kind, average)
    sums = batch_sums(score_batch(kind, y_true, y_proba, labels, sample_weight, input_format))
    return d2_value(kind, sums, average, sample_weight)


def check_d2_average(kind: str, average: str) -> None:
    """Binary and multiclass targets have one D² over all samples: ``average='micro'`` only."""
    if kind != MULTILABEL and average != "micro":
        raise ValueError(
            f"`average` must be 'micro' for binary or multiclass `y_true` (one D² over all samples), got "
            f"{average!r}; per-label averages are for multilabel indicator targets."
        )


def d2_value(kind: str, sums: Tensor, average: str, sample_weight: object) -> float | np.ndarray:
    """``d2_cross_entropy_score``'s value from ``score_sums`` (``sample_weight`` must hold no negative weight)."""
    _check_no_negative_weight(sample_weight)
    if kind != MULTILABEL:
        return float(multiclass_d2_from_sums(sums, "micro"))
    value = d2_from_sums(sums, average)
    return value.numpy().copy() if average == "none" else float(value)
