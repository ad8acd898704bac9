"""``cross_entropy_loss``: scikit-learn inputs in, the functional core's sums, a float out."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from xent_metrics.functional._label_sums import class_label_sums, indicator_sums, per_output_sums
from xent_metrics.functional._sums import cross_entropy_from_sums, loss_sum_from_sums, weight_sum_from_sums
from xent_metrics.scoring._inputs import (
    MULTILABEL,
    as_tensor,
    check_class_columns,
    check_flag,
    check_lengths,
    check_options,
    check_sample_weight,
    check_scores,
    class_targets,
    encode,
    indicator_targets,
    pad_classes,
    resolve_classes,
    target_type,
    warn_rows_not_normalized,
)


def classes_path(y_true: object, y_proba: object, labels: object, weight_in: object, input_format: str) -> Tensor:
    y = class_targets(y_true)
    scores = check_scores(y_proba, input_format)
    check_lengths(y.shape[0], scores)
    weight = check_sample_weight(weight_in, y.shape[0])
    classes = resolve_classes(y, labels)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    check_class_columns(classes, scores, labels is not None)
    if input_format == "probs" and scores.ndim == 2:
        warn_rows_not_normalized(scores)
    return class_label_sums(as_tensor(scores), as_tensor(encode(y, classes)), input_format, _tensor(weight))


def _tensor(weight: np.ndarray | None) -> Tensor | None:
    return None if weight is None else as_tensor(weight)


def _binary_columns(scores: np.ndarray, classes: object, output: int, input_format: str) -> np.ndarray:
    """Return output ``output``'s ``(n, 2)`` scores for classes ``[0, 1]``, padding a single-class estimator's."""
    name = f"y_proba[{output}]"
    if classes is None:
        if scores.shape[1] != 2:
            raise ValueError(
                f"`{name}` has shape {scores.shape}; expected (n_samples, 2) for classes [0, 1]. A single column means "
                "its estimator saw one class in training: pass labels=estimator.classes_ (one array per output)."
            )
        return scores
    known = np.asarray(classes).reshape(-1)
    if (
        known.shape[0] != scores.shape[1]
        or not np.all((known == 0) | (known == 1))
        or len(set(known.tolist())) < len(known)
    ):
        raise ValueError(
            f"labels[{output}] must list the distinct classes (0 or 1) of the {scores.shape[1]} column(s) of `{name}`, "
            f"got {known.tolist()}."
        )
    return pad_classes(scores, known.astype(np.int64), 2, input_format)


def _multilabel_list_sums(
    target: np.ndarray, y_proba: Sequence, labels: object, weight: np.ndarray | None, input_format: str
) -> Tensor:
    """Per-label sums for multi-output ``predict_proba``: one 2-class core call per output."""
    if input_format == "logits":
        raise ValueError("A list `y_proba` holds probabilities per output: use input_format='probs' or 'log_probs'.")
    num_labels = target.shape[1]
    if len(y_proba) != num_labels:
        raise ValueError(
            f"`y_proba` is a list of {len(y_proba)} arrays but `y_true` has {num_labels} labels (columns)."
        )
    if labels is not None and (not isinstance(labels, Sequence | np.ndarray) or len(labels) != num_labels):
        raise ValueError(
            f"With a list `y_proba`, `labels` must hold the classes of each of the {num_labels} outputs "
            f"(estimator.classes_), got {labels!r}."
        )
    outputs = []
    for k, part in enumerate(y_proba):
        scores = check_scores(part, input_format, name=f"y_proba[{k}]")
        check_lengths(target.shape[0], scores, name=f"y_proba[{k}]")
        scores = _binary_columns(scores, None if labels is None else labels[k], k, input_format)
        if input_format == "probs":
            warn_rows_not_normalized(scores, name=f"y_proba[{k}]")
        outputs.append(as_tensor(scores))
    return per_output_sums(outputs, as_tensor(target), input_format, _tensor(weight))


def multilabel_path(y_true: object, y_proba: object, labels: object, weight_in: object, input_format: str) -> Tensor:
    target = indicator_targets(y_true)
    weight = check_sample_weight(weight_in, target.shape[0])
    if isinstance(y_proba, list | tuple) and y_proba and all(getattr(p, "ndim", 0) == 2 for p in y_proba):
        return _multilabel_list_sums(target, y_proba, labels, weight, input_format)
    if labels is not None:
        raise ValueError(
            "`labels` is only used for a multilabel `y_true` when `y_proba` is a list of per-output arrays; "
            f"with an (n_samples, n_labels) `y_proba` leave it None, got {labels!r}."
        )
    scores = check_scores(y_proba, input_format)
    if scores.shape != target.shape:
        raise ValueError(
            f"For a multilabel `y_true` of shape {target.shape}, `y_proba` must have the same shape (one score per "
            f"label) or be a list of {target.shape[1]} (n_samples, 2) arrays, got shape {scores.shape}."
        )
    _warn_if_one_hot(target, scores, input_format)
    return indicator_sums(as_tensor(scores), as_tensor(target), input_format, _tensor(weight))


def _warn_if_one_hot(target: np.ndarray, scores: np.ndarray, input_format: str) -> None:
    """``log_loss`` reads a one-hot ``y_true`` as multiclass; we read it as multilabel. Say so when that is likely."""
    if input_format != "probs" or not np.all(target.sum(axis=1) == 1):
        return
    if np.allclose(scores.sum(axis=1), 1, rtol=np.sqrt(np.finfo(scores.dtype).eps)):
        warnings.warn(
            "`y_true` is a one-hot indicator and the rows of `y_proba` sum to 1: it is scored as multilabel (the mean "
            "per-label binary cross-entropy). For the multiclass log loss pass class labels, e.g. y_true.argmax(1).",
            UserWarning,
            stacklevel=3,
        )


def _result(sums: Tensor, average: str, normalize: bool, per_sample_terms: int, entries: str) -> float | np.ndarray:
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
    average = check_options(input_format, average)
    check_flag("normalize", normalize)
    if average == "macro" and not normalize:
        raise ValueError("average='macro' is a mean of means; it cannot be combined with normalize=False.")
    if target_type(y_true) == MULTILABEL:
        sums = multilabel_path(y_true, y_proba, labels, sample_weight, input_format)
        return _result(sums, average, normalize, sums.shape[1], "labels")
    return _result(
        classes_path(y_true, y_proba, labels, sample_weight, input_format), average, normalize, 1, "classes"
    )
