"""Array conversion in scikit-learn's vocabulary: ``y_true``, ``y_proba``, ``labels``, ``sample_weight``.

Everything here reads, converts and reshapes arrays; no loss is computed (the math lives in
:mod:`xent_metrics.functional`) and no rule is declared twice: the options, the score ranges and the
row-sum tolerance are :mod:`xent_metrics.functional._validation`'s and
:mod:`~xent_metrics.functional._value_checks`', worded here as
:func:`sklearn.metrics.log_loss` words them. Exception types follow ``log_loss``: a wrong value or
shape raises ``ValueError``, a wrong type ``TypeError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.utils import check_array
from sklearn.utils.multiclass import type_of_target, unique_labels
from torch import Tensor

from xent_metrics.functional import _validation, _value_checks

#: :data:`_validation.INPUT_FORMATS`, ``"probs"`` (``predict_proba``, the default here) first: this face lists them so.
SCORE_FORMATS = ("probs", *(f for f in _validation.INPUT_FORMATS if f != "probs"))
FLOAT_DTYPES = (np.float64, np.float32, np.float16)
CLASS_TARGETS = ("binary", "multiclass")
MULTILABEL = "multilabel-indicator"


def check_score_options(
    input_format: str, average: str | None, averages: Sequence[str] = _validation.AVERAGES
) -> str:
    """Raise ``ValueError`` unless ``input_format`` is a known format and ``average`` one of ``averages``.

    Returns ``average``, ``None`` read as ``"none"`` (:func:`~xent_metrics.functional._validation.check_average`).
    """
    _validation.check_choice("input_format", input_format, SCORE_FORMATS)
    return _validation.check_average(average, averages)


def check_bool(name: str, value: object) -> None:
    """Raise ``TypeError`` unless ``value`` is a bool; a numpy bool is converted first."""
    _validation.check_flag(name, bool(value) if isinstance(value, np.bool_) else value)


def target_type(y_true: object) -> str:
    """Return ``"binary"``, ``"multiclass"`` or ``"multilabel-indicator"``; raise for any other target."""
    kind = type_of_target(y_true, input_name="y_true")
    if kind in (*CLASS_TARGETS, MULTILABEL):
        return kind
    raise ValueError(
        f"`y_true` must hold class labels (binary or multiclass) or a multilabel indicator matrix of 0 and 1, "
        f"got target type {kind!r}. Unknown label type: cross-entropy needs classes, not {kind} values."
    )


def class_targets(y_true: object) -> np.ndarray:
    """Return class labels as a 1-D array; an ``(n, 1)`` column is raveled."""
    if isinstance(y_true, list | tuple):
        unique_labels(y_true)  # a list mixing strings and numbers raises here, before numpy turns all into str
    y = np.asarray(y_true)
    return y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y


def indicator_targets(y_true: object) -> np.ndarray:
    """Return a multilabel indicator as a dense ``(n, K)`` int8 array (sparse input is densified)."""
    dense = y_true.toarray() if hasattr(y_true, "toarray") else y_true
    return np.asarray(dense).astype(np.int8)


def as_tensor(array: np.ndarray) -> Tensor:
    """Share ``array``'s memory with a tensor (the core never writes into its inputs)."""
    with warnings.catch_warnings():
        # A read-only array (a joblib memmap, a pandas buffer) is fine: the core only reads it.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def named_check_array(name: str, value: object, **options: object) -> np.ndarray:
    """scikit-learn's ``check_array`` (1-D or 2-D), its errors prefixed with the argument's name.

    Its own texts ("Found array with 0 sample(s)", "Complex data not supported", torch's "can't convert
    meta device type tensor") do not say which argument they are about.
    """
    try:
        return check_array(value, ensure_2d=False, input_name=name, **options)
    except (TypeError, ValueError) as err:
        raise type(err)(f"`{name}`: {err}") from err


def check_scores(y_proba: object, input_format: str, name: str = "y_proba", *, check_values: bool = True) -> np.ndarray:
    """Return ``y_proba`` as a 1-D or 2-D float array after checking its values for ``input_format``.

    The rules are :func:`~xent_metrics.functional._value_checks.score_problem`'s (probabilities in
    ``[0, 1]``, finite logits, log-probabilities ``<= 0`` with ``-inf`` allowed), from one
    multi-threaded min/max pass, worded as ``check_array`` words them. Integer input becomes
    float64, as in ``log_loss``. ``check_values=False`` (the scorer, which checked the estimator's
    response in its own words) only converts.
    """
    scores = named_check_array(name, y_proba, dtype=FLOAT_DTYPES, ensure_all_finite=False)
    if not check_values:
        return scores
    lo, hi = _value_checks.value_bounds(as_tensor(scores))
    problem = _value_checks.score_problem(lo, hi, input_format)
    if problem == "nan":
        raise ValueError(f"Input {name} contains NaN.")
    if problem == "inf" or hi == -math.inf:  # all -inf: refused here, also for log-probabilities (as always)
        raise ValueError(f"Input {name} contains infinity or a value too large for {scores.dtype!r}.")
    if problem is not None and input_format == "log_probs":
        raise ValueError(_value_checks.log_probs_above_zero(name, lo, hi))
    if problem == "above":
        raise ValueError(f"`{name}` contains values greater than 1: {hi}. Probabilities must lie in [0, 1].")
    if problem == "below":
        raise ValueError(f"`{name}` contains values lower than 0: {lo}. Probabilities must lie in [0, 1].")
    return scores


def warn_rows_not_normalized(probs: np.ndarray, name: str = "y_proba") -> None:
    """Warn as ``log_loss`` does (same text, same tolerance) when probability rows do not sum to 1."""
    bounds = _value_checks.row_sums_off_one(as_tensor(probs))
    if bounds is not None:
        warnings.warn(
            f"The y_prob values do not sum to one. Make sure to pass probabilities. (`{name}` rows sum to values "
            f"in [{bounds[0]:.6g}, {bounds[1]:.6g}]; they are clipped to [eps, 1 - eps], not renormalised.)",
            UserWarning,
            stacklevel=4,
        )


def score_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype scores are read in: their own when float16, float32 or float64, else float64 (as ``log_loss``)."""
    return dtype if dtype in FLOAT_DTYPES else np.dtype(np.float64)


def pad_classes(scores: np.ndarray, columns: np.ndarray, width: int, input_format: str) -> np.ndarray:
    """Return ``(n, width)`` scores: ``scores``' columns at ``columns``, probability 0 for every other class.

    The padded array keeps the scores' dtype (:func:`score_dtype`), so the loss clips it with that
    dtype's ``eps``, as ``log_loss`` clips the same array: widening a float32 ``predict_proba`` to
    float64 would move ``eps`` from 1.2e-7 to 2.2e-16, and with it the loss of every clipped value,
    the classes the estimator saw included. Log-probabilities get ``log(eps)`` of the scores' dtype, that clipped
    zero (not ``-inf``), in float64: they are used as given, never clipped, so widening them is exact, while
    ``log(eps)`` rounded to float16 would move the padded class's loss by 3e-4.
    """
    dtype = score_dtype(scores.dtype)
    if input_format == "probs":
        zero = 0.0
    else:
        zero, dtype = math.log(np.finfo(dtype).eps), np.dtype(np.float64)
    padded = np.full((scores.shape[0], width), zero, dtype=dtype)
    padded[:, columns] = scores
    return padded


def sample_weight_array(sample_weight: object, num_samples: int) -> np.ndarray | None:
    """Return ``sample_weight`` as a float64 ``(n,)`` array. Like ``log_loss``, some weight must be non-zero."""
    if sample_weight is None:
        return None
    if np.isscalar(sample_weight) or not hasattr(sample_weight, "__len__"):
        raise TypeError(
            f"`sample_weight` must be an array-like of shape ({num_samples},) or None, got "
            f"{type(sample_weight).__name__} {sample_weight!r}."
        )
    weight = named_check_array("sample_weight", sample_weight, dtype=(np.float64, np.float32))
    if weight.shape != (num_samples,):
        raise ValueError(
            f"`sample_weight` must have shape ({num_samples},), one weight per sample, got {weight.shape}. "
            "Found input variables with inconsistent numbers of samples."
        )
    if not np.any(weight):
        raise ValueError("Sample weights must contain at least one non-zero number; `sample_weight` is all zero.")
    return np.ascontiguousarray(weight, dtype=np.float64)


def check_lengths(num_samples: int, scores: np.ndarray, name: str = "y_proba") -> None:
    """Raise ``ValueError`` unless ``scores`` has one row per sample of ``y_true``."""
    if scores.shape[0] != num_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: `y_true` has {num_samples}, `{name}` has "
            f"{scores.shape[0]} (shape {scores.shape})."
        )


def resolve_classes(y: np.ndarray, labels: object) -> np.ndarray:
    """Return the sorted classes: the unique ``labels`` when given, else those of ``y``.

    As ``log_loss`` (through ``LabelBinarizer``), ``labels`` are sorted: unsorted ``labels`` warn.
    Fewer than two classes, or ``y`` values outside ``labels``, raise ``ValueError``.
    """
    if labels is None:
        classes = unique_labels(y)
        if classes.shape[0] < 2:
            raise ValueError(
                f"y_true contains only one label ({classes.tolist()[0]!r}). Please provide the list of all expected "
                "class labels explicitly through the labels argument."
            )
        return classes
    given = np.asarray(labels)
    classes = unique_labels(given)
    if classes.shape[0] < 2:
        raise ValueError(f"The labels array needs to contain at least two labels, got {classes.tolist()}.")
    if classes.shape != given.shape or not np.all(classes == given):
        warnings.warn(
            f"Labels passed were {given.tolist()}, but the columns of y_proba are read in sorted order: pass the "
            f"ordered labels={classes.tolist()} and make the columns of y_proba follow it.",
            UserWarning,
            stacklevel=4,
        )
    known = set(classes.tolist())
    undeclared = [c for c in unique_labels(y).tolist() if c not in known]
    if undeclared:
        raise ValueError(f"y_true contains values {undeclared} not belonging to the passed labels {classes.tolist()}.")
    return classes


def encode(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Return the int64 index of each ``y`` value in the sorted ``classes`` (all values are known)."""
    num = classes.shape[0]
    if classes.dtype.kind in "iu" and classes[0] == 0 and classes[-1] == num - 1 and y.dtype.kind in "iu":
        return y.astype(np.int64, copy=False)  # classes 0..C-1 (sorted, unique): each label is its own index
    return np.searchsorted(classes, y).astype(np.int64, copy=False)


def check_class_columns(classes: np.ndarray, scores: np.ndarray, labels_given: bool) -> None:
    """Raise unless ``scores`` has one column per class (or is 1-D / one column for two classes)."""
    columns = 2 if scores.ndim == 1 or scores.shape[1] == 1 else scores.shape[1]
    if columns == classes.shape[0]:
        return
    if labels_given:
        raise ValueError(
            f"The number of classes in labels is different from that in y_proba: {classes.shape[0]} labels "
            f"{classes.tolist()} but y_proba has {columns} columns (shape {scores.shape})."
        )
    raise ValueError(
        f"y_true and y_proba contain different number of classes: {classes.shape[0]} vs {columns}. Please provide the "
        f"true labels explicitly through the labels argument. Classes found in y_true: {classes.tolist()}."
    )
