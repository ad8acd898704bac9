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
from typing import NamedTuple

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


def score_array(y_proba: object, name: str = "y_proba") -> np.ndarray:
    """``y_proba`` as a 1-D or 2-D float array (integers become float64, as in ``log_loss``); values unchecked."""
    return named_check_array(name, y_proba, dtype=FLOAT_DTYPES, ensure_all_finite=False)


#: ``log_loss``'s warning (same text, same tolerance) for probability rows that do not sum to 1.
_ROWS_WARNING = (
    "The y_prob values do not sum to one. Make sure to pass probabilities. (`{name}` rows sum to values in "
    "[{lo:.6g}, {hi:.6g}]; they are clipped to [eps, 1 - eps], not renormalised.)"
)


def check_score_values(scores: np.ndarray, input_format: str, name: str = "y_proba", rows: bool = False) -> None:
    """Raise unless ``scores`` fit ``input_format``; with ``rows``, warn where probability rows do not sum to 1.

    The rules are :func:`~xent_metrics.functional._value_checks.score_problem`'s (probabilities in
    ``[0, 1]``, finite logits, log-probabilities ``<= 0`` with ``-inf`` allowed), from one
    multi-threaded min/max pass, worded as ``check_array`` words them; the row sums as ``log_loss``
    words them.
    """
    values = torch.from_numpy(np.ascontiguousarray(scores))
    lo, hi = _value_checks.value_bounds(values)
    problem = _value_checks.score_problem(lo, hi, input_format)
    if problem == "nan":
        raise ValueError(f"Input {name} contains NaN.")
    if problem == "inf" or hi == -math.inf:  # all -inf: refused, for log-probabilities too
        raise ValueError(f"Input {name} contains infinity or a value too large for {scores.dtype!r}.")
    if problem is not None and input_format == "log_probs":
        raise ValueError(_value_checks.log_probs_above_zero(name, lo, hi))
    if problem == "above":
        raise ValueError(f"`{name}` contains values greater than 1: {hi}. Probabilities must lie in [0, 1].")
    if problem == "below":
        raise ValueError(f"`{name}` contains values lower than 0: {lo}. Probabilities must lie in [0, 1].")
    bounds = _value_checks.row_sums_off_one(values) if rows else None
    if bounds is not None:
        warnings.warn(_ROWS_WARNING.format(name=name, lo=bounds[0], hi=bounds[1]), UserWarning, stacklevel=5)


def warn_rows_not_normalized(probs: np.ndarray, name: str = "y_proba") -> None:
    """Warn as ``log_loss`` does (same text, same tolerance) when probability rows do not sum to 1."""
    bounds = _value_checks.row_sums_off_one(as_tensor(probs))
    if bounds is not None:
        warnings.warn(_ROWS_WARNING.format(name=name, lo=bounds[0], hi=bounds[1]), UserWarning, stacklevel=4)


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


class ScoreBatch(NamedTuple):
    """Checked scikit-learn inputs as tensors: ``kind`` (a target type, or ``"outputs"`` for per-output arrays)."""

    kind: str
    scores: Tensor | list[Tensor]
    target: Tensor
    sample_weight: Tensor | None
    input_format: str


def score_batch(
    kind: str,
    y_true: object,
    y_proba: object,
    labels: object,
    sample_weight: object,
    input_format: str,
    *,
    check_values: bool = True,
) -> ScoreBatch:
    """Check and convert scikit-learn inputs for ``kind`` (:func:`target_type`'s) into a :class:`ScoreBatch`.

    ``check_values=False`` (the scorer, which checked the estimator's response in its own words) skips
    the checks of score values.
    """
    if kind == MULTILABEL:
        return multilabel_path(y_true, y_proba, labels, sample_weight, input_format, check_values)
    return classes_path(y_true, y_proba, labels, sample_weight, input_format, check_values)


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


def classes_path(
    y_true: object, y_proba: object, labels: object, weight_in: object, input_format: str, check_values: bool
) -> ScoreBatch:
    """Class labels and ``(n,)`` / ``(n, C)`` scores: the labels encoded as indices of the sorted classes."""
    y = class_targets(y_true)
    scores = score_array(y_proba)
    check_lengths(y.shape[0], scores)
    weight = sample_weight_array(weight_in, y.shape[0])
    classes = resolve_classes(y, labels)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    check_class_columns(classes, scores, labels is not None)
    batch = ScoreBatch("classes", as_tensor(scores), as_tensor(encode(y, classes)), _tensor(weight), input_format)
    if check_values:  # last: the only call out of this module
        check_score_values(scores, input_format, rows=input_format == "probs" and scores.ndim == 2)
    return batch


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


def _outputs_batch(
    target: np.ndarray, y_proba: Sequence, labels: object, weight: np.ndarray | None, input_format: str, checked: bool
) -> ScoreBatch:
    """Multi-output ``predict_proba``: one ``(n, 2)`` array per label (kind ``"outputs"``)."""
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
        name = f"y_proba[{k}]"
        scores = score_array(part, name=name)
        if checked:
            check_score_values(scores, input_format, name)
        check_lengths(target.shape[0], scores, name=name)
        scores = _binary_columns(scores, None if labels is None else labels[k], k, input_format)
        if checked and input_format == "probs":
            warn_rows_not_normalized(scores, name=name)
        outputs.append(as_tensor(scores))
    return ScoreBatch("outputs", outputs, as_tensor(target), _tensor(weight), input_format)


def multilabel_path(
    y_true: object, y_proba: object, labels: object, weight_in: object, input_format: str, check_values: bool
) -> ScoreBatch:
    """A multilabel indicator and ``(n, K)`` positive-label scores, or one ``(n, 2)`` array per label."""
    target = indicator_targets(y_true)
    weight = sample_weight_array(weight_in, target.shape[0])
    if isinstance(y_proba, list | tuple) and y_proba and all(getattr(p, "ndim", 0) == 2 for p in y_proba):
        return _outputs_batch(target, y_proba, labels, weight, input_format, check_values)
    if labels is not None:
        raise ValueError(
            "`labels` is only used for a multilabel `y_true` when `y_proba` is a list of per-output arrays; "
            f"with an (n_samples, n_labels) `y_proba` leave it None, got {labels!r}."
        )
    scores = score_array(y_proba)
    if scores.shape != target.shape:
        raise ValueError(
            f"For a multilabel `y_true` of shape {target.shape}, `y_proba` must have the same shape (one score per "
            f"label) or be a list of {target.shape[1]} (n_samples, 2) arrays, got shape {scores.shape}."
        )
    _warn_if_one_hot(target, scores, input_format)
    batch = ScoreBatch(MULTILABEL, as_tensor(scores), as_tensor(target), _tensor(weight), input_format)
    if check_values:  # last: the only call out of this module
        check_score_values(scores, input_format)
    return batch


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

