"""Results from accumulated float64 sums.

Every ``_update`` step returns a ``(3, K)`` float64 tensor of **sums** (the metrics' state and
checkpoint layout) whose rows each hold one quantity, per class (multiclass) or label (binary,
multilabel) ``k``:

- ``LOSS``: the weighted loss sum attributed to ``k`` (class weights and ``pos_weight`` included);
- ``WEIGHT``: the weight sum of the samples (elements) behind it, the denominator of the mean;
- ``TARGET``: the weighted target mass ``sum_i w_i y_ik``, with ``w_i`` the sample weight (0 where
  ``ignore_index`` drops the target; class weights not included) and ``y_ik`` the target after label
  smoothing: a one-hot row for a class index, the probability row for soft targets, the 0/1 label
  for binary and multilabel. It gives the base rate (the class prior) of normalized entropy.

Every producer fits that: the BCE kernel (``_bce.py``: binary, multilabel), the softmax kernel
(``_softmax_ce.py``: hard targets, where plain batches count classes for both ``WEIGHT`` and
``TARGET``, soft targets, smoothing's ``s / C`` share), and the two conversions between a class and
a binary label (:func:`class_sums_from_label`, :func:`label_sums_from_classes`) the scikit-learn face
needs for positive-class scores and per-output arrays. For a binary or multilabel label ``TARGET``
is the positive mass; for a class it is that class's mass.

Faces never index these rows: they read results through the functions here (two normalized-entropy
functions, one per meaning of the base rate; :func:`loss_sum_from_sums` and
:func:`weight_sum_from_sums` for scikit-learn's ``normalize=False`` and signed weights). Sums add
exactly across batches and processes, so any split of the data gives the same result.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

LOSS, WEIGHT, TARGET = 0, 1, 2
NUM_SUMS = 3
#: The row of a byte count, in a state that keeps one below the three sums (``Perplexity``, bytes per update).
BYTES = NUM_SUMS


def _warn_no_data() -> None:
    warnings.warn(
        "No samples with non-zero weight were seen (every target ignored, every weight zero, or no update at "
        "all); the cross-entropy is undefined and `nan` is returned.",
        UserWarning,
        stacklevel=4,
    )


def _warn_skipped(skipped: Tensor, what: str) -> None:
    """Warn that ``average="macro"`` leaves out the ``skipped`` entries (a boolean mask)."""
    indices = skipped.nonzero().flatten().tolist()
    warnings.warn(
        f"average='macro' skipped {len(indices)} {what} (indices {indices[:10]}"
        f"{', ...' if len(indices) > 10 else ''}); their mean is undefined.",
        UserWarning,
        stacklevel=4,
    )


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Unweighted mean of ``values`` over ``valid`` entries (``nan`` if none), with no data-dependent shape."""
    return torch.where(valid, values, 0).sum() / valid.sum()


def cross_entropy_from_sums(
    sums: Tensor, average: str = "micro", *, entries: str = "classes", warn: bool = True
) -> Tensor:
    """Cross-entropy from a ``(3, K)`` sums tensor.

    ``"micro"`` divides the total loss by the total weight; ``"none"`` gives the per-class means
    (``nan`` where a class has no weight); ``"macro"`` averages the per-class means of the classes
    that have weight (``entries`` names them in the warning: classes or labels). The value is
    computed without reading any tensor back to the host; ``warn`` reads the weights to warn about
    no data or skipped classes (``validate_args=False`` turns it off, so nothing is read).
    """
    if average == "micro":
        values = (sums.reshape(-1) if sums.shape[1] == 1 else sums.sum(1)).unbind()  # a state of totals: no sum
        loss, total = values[LOSS], values[WEIGHT]
        if not warn:
            return (loss / total).masked_fill_(total <= 0, torch.nan)
        if not bool(total > 0):
            _warn_no_data()
            return torch.full((), torch.nan, dtype=sums.dtype, device=sums.device)
        return loss / total
    loss, weight = sums[LOSS], sums[WEIGHT]
    has_data = weight > 0
    per_class = torch.where(has_data, loss / weight, torch.nan)
    if warn and not bool(has_data.any()):
        _warn_no_data()
    elif warn and average == "macro" and not bool(has_data.all()):
        _warn_skipped(~has_data, f"{entries} with no weight")
    return per_class if average == "none" else _masked_mean(per_class, has_data)


def task_cross_entropy(task: Any, sums: Tensor, *, warn: bool = True) -> Tensor:
    """A task's ``cross_entropy`` step: :func:`cross_entropy_from_sums` for its ``average``, naming its ``entries``.

    ``warn``: warn (a host read) where no sample has weight or ``"macro"`` skips entries.
    """
    return cross_entropy_from_sums(sums, task.average, entries=task.entries, warn=warn)


def _binary_entropy(rate: Tensor) -> Tensor:
    return -(torch.special.xlogy(rate, rate) + torch.special.xlogy(1 - rate, 1 - rate))


def _warn_degenerate(count: int, what: str, skipped: bool = False) -> None:
    outcome = "average='macro' skips it" if skipped else "`nan` is returned for it"
    warnings.warn(
        f"Normalized entropy is undefined for {count} {what} whose weighted base rate is 0 or 1 (zero entropy); "
        f"{outcome}.",
        UserWarning,
        stacklevel=4,
    )


def multiclass_normalized_entropy_from_sums(sums: Tensor, average: str = "micro", *, warn: bool = True) -> Tensor:
    """Multiclass NE: the cross-entropy (any ``average``) over the entropy of the class prior ``TARGET / sum(TARGET)``.

    A zero entropy (a single class) gives ``nan`` and, with ``warn``, a warning.
    """
    ce = cross_entropy_from_sums(sums, average, warn=warn)
    mass = sums[TARGET]
    prior = mass / mass.sum()
    entropy = -torch.special.xlogy(prior, prior).sum()
    if warn and bool(mass.sum() > 0) and not bool(entropy > 0):
        _warn_degenerate(1, "class prior")
    return torch.where(entropy > 0, ce / entropy, torch.nan)


def normalized_entropy_from_sums(sums: Tensor, average: str = "micro", *, warn: bool = True) -> Tensor:
    """Binary and multilabel normalized entropy: the cross-entropy over the entropy of the weighted base rate.

    Per label ``k``, ``CE_k / H(p_k)`` with ``p_k = TARGET_k / WEIGHT_k``; ``"micro"`` is
    ``sum_k LOSS_k / sum_k WEIGHT_k H(p_k)`` (the loss over the loss of the best constant
    predictor). Multiclass (one prior over the classes): :func:`multiclass_normalized_entropy_from_sums`.
    A zero entropy gives ``nan`` and a warning (``warn``: the only reads of values).
    """
    loss, weight = sums[LOSS], sums[WEIGHT]
    has_data = weight > 0
    entropy = _binary_entropy(torch.where(has_data, sums[TARGET] / weight, 0.5).clamp(0, 1))
    valid = has_data & (entropy > 0)
    if warn:
        _warn_binary_ne(has_data, valid, (weight * entropy).sum(), average)
    if average == "micro":
        denom = (weight * entropy).sum()
        return torch.where(denom > 0, loss.sum() / denom, torch.nan)
    per_label = torch.where(valid, loss / (weight * entropy), torch.nan)
    return per_label if average == "none" else _masked_mean(per_label, valid)


def task_normalized_entropy(task: Any, sums: Tensor, *, warn: bool = True) -> Tensor:
    """A task's ``normalized_entropy`` step: over the class prior (multiclass) or each label's base rate."""
    if task.entries == "classes":
        return multiclass_normalized_entropy_from_sums(sums, task.average, warn=warn)
    return normalized_entropy_from_sums(sums, task.average, warn=warn)


def _warn_binary_ne(has_data: Tensor, valid: Tensor, denom: Tensor, average: str) -> None:
    """The warnings of binary / multilabel NE: no data, degenerate labels, labels skipped by ``"macro"``."""
    if not bool(has_data.any()):
        _warn_no_data()
        return
    degenerate = has_data & ~valid
    if average == "micro":
        if not bool(denom > 0):
            _warn_degenerate(int(has_data.sum()), "label(s)")
        return
    if bool(degenerate.any()):
        _warn_degenerate(int(degenerate.sum()), "label(s)", skipped=average == "macro")
    if average == "macro" and bool(valid.any()) and not bool(has_data.all()):
        _warn_skipped(~has_data, "labels with no weight")


def d2_from_sums(sums: Tensor, average: str = "micro") -> Tensor:
    """Binary / multilabel D², the fraction of cross-entropy explained over the base-rate predictor: ``1 - NE``.

    ``sums`` and ``average`` are those of :func:`normalized_entropy_from_sums`; a ``nan`` normalized
    entropy (no data, a zero-entropy base rate) stays ``nan``. 1 is a perfect predictor, 0 the constant
    base rate, below 0 worse than it.
    """
    return 1 - normalized_entropy_from_sums(sums, average)


def multiclass_d2_from_sums(sums: Tensor, average: str = "micro") -> Tensor:
    """Multiclass D², ``1 - NE`` over the class-prior predictor (:func:`multiclass_normalized_entropy_from_sums`)."""
    return 1 - multiclass_normalized_entropy_from_sums(sums, average)


def loss_sum_from_sums(sums: Tensor, average: str = "micro") -> Tensor:
    """The weighted loss sum, unnormalized: per class / label for ``average="none"``, else the total."""
    return sums[LOSS] if average == "none" else sums[LOSS].sum()


def weight_sum_from_sums(sums: Tensor) -> Tensor:
    """The total weight, the denominator of the micro mean (negative for signed scikit-learn weights)."""
    return sums[WEIGHT].sum()


def class_sums_from_label(label_sums: Tensor) -> Tensor:
    """A class's ``(3,)`` sums from the ``(3, 1)`` binary sums of the rows whose true class it is.

    Their targets are one-hot, so the class's target mass is the weight of its rows.
    """
    loss, weight = label_sums[LOSS, 0], label_sums[WEIGHT, 0]
    return torch.stack([loss, weight, weight])


def label_sums_from_classes(class_sums: Tensor) -> Tensor:
    """A binary label's ``(3,)`` sums from the ``(3, 2)`` sums of its classes 0 and 1 (class 1's mass is positive)."""
    return torch.stack([class_sums[LOSS].sum(), class_sums[WEIGHT].sum(), class_sums[TARGET, 1]])


def byte_sum_from_sums(sums: Tensor) -> Tensor:
    """The byte count of a state that keeps one (row ``BYTES``, below the three sums)."""
    return sums[BYTES].sum()
