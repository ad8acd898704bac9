"""``cross_entropy_loss``: scikit-learn inputs in, the functional core's sums, a float out."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from xent_metrics.functional import _validation
from xent_metrics.functional._sums import cross_entropy_from_sums, loss_sum_from_sums, weight_sum_from_sums
from xent_metrics.scoring._inputs import MULTILABEL, SCORE_FORMATS, score_batch, target_type
from xent_metrics.scoring._label_sums import batch_sums


def loss_value(kind: str, sums: Tensor, average: str, normalize: bool) -> float | np.ndarray:
    """``cross_entropy_loss``'s value from a batch's sums: a mean over weights, or (``normalize=False``) a sum."""
    multilabel = kind == MULTILABEL
    per_sample_terms, entries = (sums.shape[1], "labels") if multilabel else (1, "classes")
    if not normalize:
        loss = loss_sum_from_sums(sums, average)
        return loss.numpy().copy() if average == "none" else float(loss) / per_sample_terms
    total = float(weight_sum_from_sums(sums))
    if total == 0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized: `sample_weight` sums to 0.")
    if total < 0:
        if average != "micro":
            raise ValueError(
                f"`sample_weight` sums to {total:.6g} < 0; average={average!r} needs per-class weights > 0."
            )
        return float(loss_sum_from_sums(sums)) / total  # log_loss accepts signed weights with a negative total
    value = cross_entropy_from_sums(sums, average, entries=entries)
    return value.numpy().copy() if average == "none" else float(value)


def cross_entropy_loss(
    y_true: object,
    y_proba: object,
    *,
    labels: object = None,
    sample_weight: object = None,
    input_format: str = "probs",
    average: str | None = "micro",
    normalize: bool = True,
) -> float | np.ndarray:
    r"""Cross-entropy (log loss) of class labels or a multilabel indicator: ``log_loss`` made right everywhere.

    Binary and multiclass ``y_true``:

    .. math::
        L = -\frac{\sum_i w_i \log p_{i, y_i}}{\sum_i w_i}

    equal to :func:`sklearn.metrics.log_loss` (to 1e-12 relative) on every input it accepts. A
    multilabel indicator ``y_true`` (``(n, K)`` of 0 and 1) gives the mean per-label binary
    cross-entropy

    .. math::
        L = -\frac{1}{K} \sum_k \frac{\sum_i w_i \left[y_{ik} \log p_{ik} + (1 - y_{ik}) \log(1 - p_{ik})\right]}
        {\sum_i w_i}

    where ``log_loss`` drops the ``(1 - y) log(1 - p)`` terms (scikit-learn issue #10157).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Class labels (any hashable values: ints, strings, bools), or a multilabel indicator matrix.
    y_proba : array-like of shape (n_samples,), (n_samples, n_classes) or (n_samples, n_labels), or list
        Scores read as ``input_format`` says. Class labels: ``(n, C)`` with columns in the sorted order
        of the classes (as ``classes_``), or ``(n,)`` / ``(n, 1)`` scores of the positive (second)
        class of a binary problem. Multilabel: ``(n, K)`` positive-label scores, or the list of ``K``
        ``(n, 2)`` arrays that multi-output ``predict_proba`` returns (an ``(n, 1)`` array, from an
        estimator that saw one class, needs ``labels``).
    labels : array-like or list of array-like, optional
        Class labels: all the classes (sorted as the columns of ``y_proba``); inferred from ``y_true``
        when None. Multilabel with a list ``y_proba``: the classes of each output, i.e. the fitted
        estimator's ``classes_``; an output's missing class gets probability 0 in its dtype (clipped to
        ``eps``), or ``log(eps)`` as log-probabilities.
    sample_weight : array-like of shape (n_samples,), optional
        Weight of each sample (shared by its labels). As ``log_loss``, some weight must be non-zero.
    input_format : {"probs", "logits", "log_probs"}, default="probs"
        ``"probs"`` (``predict_proba``): clipped to ``[eps, 1 - eps]``, ``eps = finfo(dtype).eps``,
        never renormalised, exactly as ``log_loss``; rows that do not sum to 1 warn, as there.
        ``"logits"`` (``decision_function``): a stable softmax (``(n, C)``) or sigmoid (1-D,
        multilabel) through log-sum-exp / softplus. ``"log_probs"`` (``predict_log_proba``): ``<= 0``
        (a positive value raises), not renormalised.
    average : {"micro", "macro", "none"} or None, default="micro"
        ``None`` means ``"none"`` (torchmetrics' spelling).
        ``"micro"``: the weighted mean over samples (labels). ``"macro"``: the unweighted mean of the
        per-class (per-label) means, skipping classes absent from ``y_true`` with a warning.
        ``"none"``: the array of per-class (per-label) means.
    normalize : bool, default=True
        If False, return the weighted sum over samples of the per-sample loss (the mean over labels
        for multilabel); with ``average="none"`` the per-class (per-label) sums.

    Shape
    -----
    - ``y_true``: ``(n_samples,)`` labels, or ``(n_samples, n_labels)`` indicators.
    - ``y_proba``: ``(n_samples, n_classes)``; ``(n_samples,)`` positive-class scores (binary);
      ``(n_samples, n_labels)``, or a list of ``n_labels`` arrays ``(n_samples, 2)`` (multilabel).
    - ``sample_weight``: ``(n_samples,)``.
    - Output: a float, or ``(n_classes,)`` / ``(n_labels,)`` with ``average="none"``.

    Returns
    -------
    float or ndarray of shape (n_classes,) or (n_labels,)
        The loss; an array for ``average="none"``.

    Raises
    ------
    TypeError
        ``normalize`` not a bool, ``sample_weight`` not array-like.
    ValueError
        Probabilities outside ``[0, 1]``, NaN or inf, inconsistent lengths, a single class, ``y_true``
        values outside ``labels``, columns not matching the classes, a non-class ``y_true``
        (continuous, multiclass-multioutput), all-zero weights, an unknown option.
    ZeroDivisionError
        Weights sum to zero (some non-zero, e.g. ``[1, -1]``), as ``log_loss``.

    See Also
    --------
    make_cross_entropy_scorer : A scorer for ``cross_val_score`` / ``GridSearchCV`` built on this.
    xent_metrics.functional.multiclass_cross_entropy : The torch function doing the math.

    Notes
    -----
    The math is :mod:`xent_metrics.functional`'s: per-class float64 sums, clipping as ``log_loss``.
    A one-hot ``y_true`` is a multilabel indicator here (``log_loss`` reads it as multiclass): pass
    class labels (``y_true.argmax(1)``) for the multiclass loss; a warning says so when the rows of
    ``y_proba`` sum to 1. float32 input is computed in float32 and summed in float64.

    Examples
    --------
    >>> from xent_metrics.scoring import cross_entropy_loss
    >>> cross_entropy_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]])
    0.21616
    >>> cross_entropy_loss([[1, 0], [0, 1]], [[.9, .2], [.3, .6]])  # multilabel: mean per-label BCE
    0.2990
    >>> cross_entropy_loss([1, 0], [2.0, -1.0], input_format="logits")  # sigmoid of margins
    0.2201
    """
    average = _validation.check_format_and_average(input_format, average, SCORE_FORMATS)
    _validation.check_flag("normalize", bool(normalize) if isinstance(normalize, np.bool_) else normalize)
    if average == "macro" and not normalize:
        raise ValueError("average='macro' is a mean of means; it cannot be combined with normalize=False.")
    kind = target_type(y_true)
    sums = batch_sums(score_batch(kind, y_true, y_proba, labels, sample_weight, input_format))
    return loss_value(kind, sums, average, normalize)
