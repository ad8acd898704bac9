"""Results from accumulated float64 sums.

Every ``_update`` step returns a ``(3, K)`` float64 tensor of **sums** whose rows are

- ``LOSS``: the weighted loss sum attributed to class / label ``k``,
- ``WEIGHT``: the weight sum of the samples (elements) behind it, the denominator of the mean,
- ``TARGET``: the weighted target mass of class / label ``k`` (the base rate, for normalized entropy).

Sums add exactly across batches and processes, so any split of the data gives the same result.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

LOSS, WEIGHT, TARGET = 0, 1, 2
NUM_SUMS = 3


def new_sums(num: int, device: torch.device | str | None = None) -> Tensor:
    """Return a zero ``(3, num)`` float64 tensor of sums."""
    return torch.zeros(NUM_SUMS, num, dtype=torch.float64, device=device)


def _nan(sums: Tensor) -> Tensor:
    return torch.tensor(float("nan"), dtype=torch.float64, device=sums.device)


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


def _macro_mean(per_class: Tensor, valid: Tensor, what: str) -> Tensor:
    """Unweighted mean of ``per_class`` over ``valid`` entries, warning about skipped ones."""
    if not bool(valid.any()):
        _warn_no_data()
        return torch.full((), float("nan"), dtype=torch.float64, device=per_class.device)
    if not bool(valid.all()):
        _warn_skipped(~valid, f"{what} with no weight")
    return per_class[valid].mean()


def cross_entropy_from_sums(sums: Tensor, average: str = "micro", *, entries: str = "classes") -> Tensor:
    """Cross-entropy from a ``(3, K)`` sums tensor.

    ``"micro"`` divides the total loss by the total weight; ``"none"`` gives the per-class means
    (``nan`` where a class has no weight); ``"macro"`` averages the per-class means of the classes
    that have weight, warning about the others (``entries`` names them there: classes or labels).
    """
    loss, weight = sums[LOSS], sums[WEIGHT]
    if average == "micro":
        total = weight.sum()
        if not bool(total > 0):
            _warn_no_data()
            return _nan(sums)
        return loss.sum() / total
    per_class = torch.where(weight > 0, loss / weight, torch.nan)
    if average == "none":
        if not bool((weight > 0).any()):
            _warn_no_data()
        return per_class
    return _macro_mean(per_class, weight > 0, entries)


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


def normalized_entropy_from_sums(sums: Tensor, average: str = "micro", *, multiclass: bool = False) -> Tensor:
    """Normalized entropy: the cross-entropy over the entropy of the weighted base rate.

    Binary and multilabel: per label ``k``, ``CE_k / H(p_k)`` with ``p_k = TARGET_k / WEIGHT_k``;
    ``"micro"`` is ``sum_k LOSS_k / sum_k WEIGHT_k H(p_k)`` (the loss over the loss of the best
    constant predictor). Multiclass: the cross-entropy (any ``average``) over the entropy of the
    weighted class prior ``TARGET / sum(TARGET)``. A zero entropy gives ``nan`` and a warning.
    """
    if multiclass:
        ce = cross_entropy_from_sums(sums, average)
        mass = sums[TARGET]
        if not bool(mass.sum() > 0):
            return ce  # no data: already warned and nan
        prior = mass / mass.sum()
        entropy = -torch.special.xlogy(prior, prior).sum()
        if not bool(entropy > 0):
            _warn_degenerate(1, "class prior")
            return torch.full_like(ce, float("nan"))
        return ce / entropy
    loss, weight = sums[LOSS], sums[WEIGHT]
    has_data = weight > 0
    if not bool(has_data.any()):
        _warn_no_data()
        return torch.full_like(loss, float("nan")) if average == "none" else _nan(sums)
    rate = torch.where(has_data, sums[TARGET] / weight, 0.5)
    entropy = _binary_entropy(rate.clamp(0, 1))
    if average == "micro":
        denom = (weight * entropy).sum()
        if not bool(denom > 0):
            _warn_degenerate(int(has_data.sum()), "label(s)")
            return _nan(sums)
        return loss.sum() / denom
    degenerate = has_data & ~(entropy > 0)
    if bool(degenerate.any()):
        _warn_degenerate(int(degenerate.sum()), "label(s)", skipped=average == "macro")
    valid = has_data & ~degenerate
    per_label = torch.where(valid, loss / (weight * entropy), torch.nan)
    if average == "none":
        return per_label
    if not bool(valid.any()):
        return _nan(sums)  # every label with data is degenerate: warned above
    if not bool(has_data.all()):
        _warn_skipped(~has_data, "labels with no weight")
    return per_label[valid].mean()


def d2_from_sums(sums: Tensor, average: str = "micro", *, multiclass: bool = False) -> Tensor:
    """D², the fraction of cross-entropy explained over the base-rate (class-prior) predictor: ``1 - NE``.

    ``sums`` and the arguments are those of :func:`normalized_entropy_from_sums`; a ``nan`` normalized
    entropy (no data, a zero-entropy base rate) stays ``nan``. 1 is a perfect predictor, 0 the constant
    base rate, below 0 worse than it.
    """
    return 1 - normalized_entropy_from_sums(sums, average, multiclass=multiclass)
