"""Checks that read tensor values (a host sync off the CPU), run only with ``validate_args=True``.

Every message names the argument, what was seen and what was expected. The rules for values live here
once: :func:`score_problem` (what each ``input_format`` allows) and :func:`row_sums_off_one` (probability
rows that do not sum to 1). A task's batch check (:mod:`xent_metrics.functional._validation`, which
reads only metadata) ends with the one function here for its task (``check_*_values``). The
scikit-learn face words the same rules in its own vocabulary (``y_proba``, the estimator's name).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from xent_metrics.functional import _chunks


def value_bounds(value: Tensor) -> tuple[float, float]:
    """Minimum and maximum of a non-empty tensor in one multi-threaded pass, no copy (NaN if any is NaN)."""
    lo, hi = torch.aminmax(value.detach())
    return float(lo), float(hi)


def check_finite(name: str, value: Tensor) -> tuple[float, float] | None:
    """Raise if ``value`` holds NaN or +-inf (forces a host sync); return its bounds (``None`` if empty).

    One ``aminmax`` pass finds any NaN (it propagates) or infinity (it is the min or the max); the bad
    values are counted, for the message, only when there are some.
    """
    if not value.numel():
        return None
    bounds = value_bounds(value)
    if value.is_floating_point() and not all(map(math.isfinite, bounds)):
        _raise_not_finite(name, value)
    return bounds


def _raise_not_finite(name: str, value: Tensor) -> None:
    raise ValueError(
        f"`{name}` contains NaN or inf ({count_not_finite(value)} of {value.numel()} values); expected finite values."
    )


def count_not_finite(value: Tensor, input_format: str = "logits") -> int:
    """How many values are NaN or infinite; ``-inf`` (a zero probability) counts only outside ``"log_probs"``."""
    bad = torch.isnan(value) | (value == math.inf) if input_format == "log_probs" else ~torch.isfinite(value)
    return int(torch.count_nonzero(bad))


def score_problem(lo: float, hi: float, input_format: str) -> str | None:
    """The first rule of ``input_format`` that scores with bounds ``[lo, hi]`` break, or ``None``.

    The rules every face checks scores by: logits are finite; probabilities are finite and in
    ``[0, 1]``; log-probabilities are not NaN, below ``+inf`` and ``<= 0`` (``-inf``, a zero
    probability, is allowed). The answer is ``"nan"`` (some NaN), ``"inf"`` (an infinity the format
    does not allow), ``"above"`` (over 1 for probabilities, 0 for log-probabilities) or ``"below"``
    (under 0, probabilities); each face words it (``lo`` and ``hi`` come from one min/max pass).
    """
    if math.isnan(lo) or math.isnan(hi):
        return "nan"
    if hi == math.inf or (lo == -math.inf and input_format != "log_probs"):
        return "inf"
    if input_format == "probs":
        return "above" if hi > 1 else "below" if lo < 0 else None
    return "above" if input_format == "log_probs" and hi > 0 else None


def log_probs_above_zero(name: str, lo: float, hi: float) -> str:
    """The message for log-probabilities above 0 (every face words it so).

    Values all in ``[0, 1]`` look like probabilities (the hint is ``'probs'``), others like logits.
    """
    hint = "probs" if 0 <= lo and hi <= 1 else "logits"
    return (
        f"`{name}` with input_format='log_probs' must be <= 0, got a maximum of {hi:.6g}."
        f" Did you mean input_format='{hint}'?"
    )


def _check_unit_interval(name: str, value: Tensor, what: str, bounds: tuple[float, float] | None = None) -> None:
    """Raise unless every value lies in [0, 1] (forces a host sync unless ``bounds``, its min and max, are given)."""
    if value.numel():
        lo, hi = value_bounds(value) if bounds is None else bounds
        if lo < 0 or hi > 1:
            raise ValueError(f"`{name}` {what} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}].")


def check_probabilities(name: str, value: Tensor, what: str) -> None:
    """Raise unless ``value`` is finite and in [0, 1]: one ``aminmax`` pass for both checks."""
    _check_unit_interval(name, value, what, check_finite(name, value))


def check_preds_values(preds: Tensor, input_format: str) -> tuple[float, float] | None:
    """Value checks on ``preds``: finite logits, probabilities in [0, 1], log-probabilities <= 0.

    One ``aminmax`` pass over ``preds`` serves every check (:func:`score_problem`), so validation
    reads the input once and allocates nothing of its size. Returns that pass's bounds (``None`` if empty).
    """
    if not preds.numel():
        return None
    lo, hi = value_bounds(preds)
    problem = score_problem(lo, hi, input_format)
    if problem is None:
        return lo, hi
    if input_format == "log_probs":
        if problem == "above":
            raise ValueError(log_probs_above_zero("preds", lo, hi))
        raise ValueError("`preds` with input_format='log_probs' must not contain NaN or +inf.")
    if problem in ("nan", "inf"):
        _raise_not_finite("preds", preds)
    _check_unit_interval("preds", preds, "with input_format='probs'", (lo, hi))
    return lo, hi  # not reached: every problem raised


def check_weight_values(name: str, weight: Tensor) -> None:
    bounds = check_finite(name, weight)
    if bounds is None:
        return
    lo, hi = bounds
    if lo < 0:
        raise ValueError(f"`{name}` must be non-negative, got a minimum of {lo:.6g}.")
    if hi == 0:  # non-negative with a zero maximum
        raise ValueError(f"`{name}` is zero everywhere ({weight.numel()} values); expected some weight > 0.")


def row_sum_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 a probability row may sum: ``1e-8 + sqrt(eps)`` (torch's ``isclose``, scikit-learn's rule)."""
    return 1e-8 + math.sqrt(torch.finfo(dtype).eps)


def row_sums_off_one(
    preds: Tensor, dtype: torch.dtype | None = None, tol: float | None = None
) -> tuple[float, float] | None:
    """The smallest and largest row sum of probability ``preds`` when some row does not sum to 1, else ``None``.

    The rule of scikit-learn's ``log_loss`` (torch's ``isclose`` tolerance: ``|s - 1| <= 1e-8 +
    sqrt(eps)``, ``eps`` of ``preds``' dtype, unless ``tol`` is given; a NaN sum fails). Rows are
    summed over dim 1 in ``dtype`` (``None``: torch's default for ``preds``' dtype), up to
    :data:`~xent_metrics.functional._chunks.ROW_CHECK_ELEMENTS` rows at a time,
    each block reduced to its minimum and maximum, so the check reads ``preds`` once and its
    temporaries are bounded by a few MiB whatever the shape; one host sync.
    """
    if preds.numel() == 0:
        return None
    tol = row_sum_tolerance(preds.dtype) if tol is None else tol
    per_row = math.prod(preds.shape[2:])  # positions per sample: their sums are rows too
    step = max(1, _chunks.ROW_CHECK_ELEMENTS // max(1, per_row))
    blocks = [_min_max(preds[i : i + step].sum(dim=1, dtype=dtype)) for i in range(0, preds.shape[0], step)]
    bounds = torch.stack(blocks)
    lo, hi = torch.stack([bounds[:, 0].min(), bounds[:, 1].max()]).tolist()
    return None if abs(lo - 1) <= tol and abs(hi - 1) <= tol else (lo, hi)  # NaN fails


def _min_max(value: Tensor) -> Tensor:
    return torch.stack([value.min(), value.max()])  # NaN propagates through both


def _row_sum_dtype(preds: Tensor) -> torch.dtype:
    return torch.float64 if preds.dtype == torch.float64 else torch.float32


def warn_rows_not_normalized(preds: Tensor) -> None:
    """Warn, as scikit-learn's ``log_loss`` does, when probability rows do not sum to 1 (summed in float32 or 64)."""
    bounds = row_sums_off_one(preds, _row_sum_dtype(preds))
    if bounds is not None:
        warnings.warn(
            f"`preds` probabilities do not sum to one along the class dimension: rows sum to values in "
            f"[{bounds[0]:.6g}, {bounds[1]:.6g}] (tolerance {row_sum_tolerance(preds.dtype):.3g} for "
            f"{preds.dtype}). They are clipped to [eps, 1 - eps] and not renormalised, as scikit-learn's log_loss "
            "does. If they are logits, pass input_format='logits'.",
            UserWarning,
            stacklevel=3,
        )


def probs_as_logits_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 a row of logits may sum and still look like probabilities (:func:`warn_probs_as_logits`).

    :func:`row_sum_tolerance` for float32 and float64; ``eps`` for float16 and bfloat16, twice what
    rounding a probability row to them can move its sum (``eps / 2``): there ``sqrt(eps)`` is 0.03 and
    0.09, wide enough for a row of random logits (``[0.25, 0.38, 0.39]`` sums to 1.02).
    """
    if dtype in (torch.float16, torch.bfloat16):
        return torch.finfo(dtype).eps
    return row_sum_tolerance(dtype)


def warn_probs_as_logits(preds: Tensor, bounds: tuple[float, float] | None) -> None:
    """Warn when ``(N, C, ...)`` logits look like probability rows: probabilities read as logits give a wrong value.

    The rule: every value lies in ``[0, 1]``, some value strictly between 0 and 1 (one-hot rows are
    not probabilities read wrongly) and every row sums to 1 within :func:`probs_as_logits_tolerance`
    (summed in float32 or float64). ``bounds`` are ``preds``' minimum and maximum from the
    value check: logits outside ``[0, 1]``, nearly all real ones, cost nothing more; others one pass
    over the row sums (and, where 0 and 1 are both present, one over the values), one host sync each.
    """
    if bounds is None or bounds[0] < 0 or bounds[1] > 1:
        return
    lo, hi = bounds
    inside = 0 < lo < 1 or 0 < hi < 1 or (lo == 0 and hi == 1 and _any_inside_unit_interval(preds))
    tol = probs_as_logits_tolerance(preds.dtype)
    if not inside or row_sums_off_one(preds, _row_sum_dtype(preds), tol) is not None:
        return
    warnings.warn(
        f"`preds` look like probabilities, not logits: every value lies in [{lo:.6g}, {hi:.6g}] and every row sums "
        f"to 1 (within {tol:.3g} for {preds.dtype}), but input_format='logits' applies "
        "a softmax to them, which gives a wrong cross-entropy. Pass input_format='probs' (or validate_args=False "
        "for logits that really are so).",
        UserWarning,
        stacklevel=3,
    )


def _any_inside_unit_interval(preds: Tensor) -> bool:
    """Whether some value lies strictly between 0 and 1, in row blocks (temporaries of a few MiB); one host sync."""
    step = max(1, _chunks.ROW_CHECK_ELEMENTS // max(1, preds[:1].numel()))
    found = [((block > 0) & (block < 1)).any() for block in preds.split(step)]
    return bool(torch.stack(found).any())


def check_binary_target_values(target: Tensor, ignore_index: int | None, name: str = "target") -> None:
    """Binary targets are 0 / 1 (or in [0, 1] when floating), apart from ``ignore_index``."""
    kept = target if ignore_index is None else target[target != ignore_index]
    if kept.is_floating_point():
        check_probabilities(name, kept, "values")
    elif kept.numel():
        lo, hi = torch.aminmax(kept.to(torch.int64) if kept.dtype == torch.bool else kept)
        if lo < 0 or hi > 1:
            extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
            raise ValueError(f"`{name}` must contain only 0 and 1{extra}, got values in [{int(lo)}, {int(hi)}].")


def check_class_indices(target: Tensor, num_classes: int, ignore_index: int | None) -> None:
    """Class indices lie in [0, C - 1] apart from ``ignore_index``: one ``aminmax`` pass over ``target``.

    Only when that range is out of bounds and an ``ignore_index`` is set are the ignored entries masked
    out and the range taken again.
    """
    if not target.numel():
        return
    lo, hi = (int(v) for v in torch.aminmax(target))
    if (lo < 0 or hi >= num_classes) and ignore_index is not None:
        kept = target[target != ignore_index]
        lo, hi = (int(v) for v in torch.aminmax(kept)) if kept.numel() else (0, 0)
    if lo < 0 or hi >= num_classes:
        extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise ValueError(
            f"`target` class indices must lie in [0, {num_classes - 1}]{extra}, got values in [{lo}, {hi}]."
        )


def check_weights_values(*weights: tuple[str, Tensor | None]) -> None:
    """The values of the sample and class weights of a batch: finite, non-negative, not all zero."""
    for name, weight in weights:
        if weight is not None:
            check_weight_values(name, weight)


def check_label_values(
    preds: Tensor, target: Tensor, input_format: str, ignore_index: int | None, *weights: tuple[str, Tensor | None]
) -> None:
    """The value checks of a binary or multilabel batch: its weights, scores and 0 / 1 (or [0, 1]) targets."""
    check_weights_values(*weights)
    check_preds_values(preds, input_format)
    check_binary_target_values(target, ignore_index)


def check_multiclass_values(
    preds: Tensor,
    target: Tensor,
    input_format: str,
    soft: bool,
    ignore_index: int | None,
    *weights: tuple[str, Tensor | None],
) -> None:
    """The value checks of a multiclass batch: weights, scores, targets, and the warnings on scores."""
    check_weights_values(*weights)
    bounds = check_preds_values(preds, input_format)
    if input_format == "logits":
        warn_probs_as_logits(preds, bounds)
    if soft:
        check_probabilities("target", target, "probabilities")
    else:
        check_class_indices(target, preds.shape[1], ignore_index)
    if input_format == "probs":
        warn_rows_not_normalized(preds)


def check_head_values(
    tensors: tuple[tuple[str, Tensor | None], ...],
    target: Tensor,
    classes: int,
    ignore_index: int | None,
    *weights: tuple[str, Tensor | None],
) -> None:
    """The value checks of a linear head's batch: weights, finite hidden states and head, class indices."""
    check_weights_values(*weights)
    for name, value in tensors:
        if value is not None:
            check_finite(name, value)
    check_class_indices(target, classes, ignore_index)
