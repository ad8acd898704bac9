"""A scorer for ``cross_val_score`` / ``GridSearchCV`` that reads the fitted estimator's ``classes_``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import sklearn
from sklearn.utils.metadata_routing import UNCHANGED, MetadataRequest

from xent_metrics.functional import _validation, _value_checks
from xent_metrics.scoring._d2 import check_d2_average, d2_value
from xent_metrics.scoring._inputs import (
    MULTILABEL,
    SCORE_FORMATS,
    as_tensor,
    class_targets,
    indicator_targets,
    pad_classes,
    score_batch,
    score_dtype,
    target_type,
    warn_rows_not_normalized,
)
from xent_metrics.scoring._label_sums import batch_sums
from xent_metrics.scoring._loss import loss_value
from xent_metrics.scoring._sklearn import SharedResponseScorer, cached_response

#: The input format each standard response method returns.
RESPONSE_FORMATS = {"predict_proba": "probs", "decision_function": "logits", "predict_log_proba": "log_probs"}


def _name(estimator: object) -> str:
    return type(estimator).__name__


def _refuse_one_vs_one(estimator: object) -> None:
    """Raise when the (final step of the) estimator's ``decision_function`` gives one margin per pair of classes.

    ``SVC(decision_function_shape="ovo")`` on 3 classes returns 3 pairwise margins, the shape of 3 class
    logits: read as logits they would give a meaningless loss. ``OneVsOneClassifier`` returns vote counts.
    """
    final = getattr(estimator, "best_estimator_", estimator)  # a fitted search: the refitted estimator
    steps = getattr(final, "steps", None)  # a Pipeline: its last step answers decision_function
    final = steps[-1][1] if isinstance(steps, list) and steps else final
    if len(getattr(final, "classes_", ())) <= 2:
        return  # two classes: one margin either way
    name = _name(estimator) if final is estimator else f"{_name(estimator)} (final estimator {_name(final)})"
    if getattr(final, "decision_function_shape", None) == "ovo":
        raise ValueError(
            f"{name} has decision_function_shape='ovo': its decision_function returns one margin per "
            "pair of classes, not one logit per class, so no cross-entropy can be read from it. Fit it with "
            "decision_function_shape='ovr', or score probabilities (probability=True, response_method='predict_proba')."
        )
    if type(final).__name__ == "OneVsOneClassifier":
        raise ValueError(
            f"{name} is a one-vs-one classifier: its decision_function returns votes, not one logit per "
            "class, so no cross-entropy can be read from it. Use a one-vs-rest or probabilistic classifier."
        )


def _check_response(estimator: object, method: str, response: object, input_format: str, kind: str) -> None:
    """Raise ``ValueError`` naming the estimator when its response is not a finite numeric array in range.

    Probabilities must lie in ``[0, 1]`` and log-probabilities be ``<= 0`` (``log_loss`` raises too);
    probability rows that do not sum to 1 warn, naming the estimator (``log_loss``'s warning, located).
    A list response is one array per output only for a multilabel target.
    """
    per_output = isinstance(response, list | tuple) and kind == MULTILABEL
    parts: list[Any] = list(response) if isinstance(response, list | tuple) and per_output else [response]
    for k, part in enumerate(parts):
        where = f"{_name(estimator)}.{method}(X)" + (f"[{k}]" if per_output else "")
        values = _as_float(where, part)
        if values.size:
            _check_response_values(where, values, input_format)
        if input_format == "probs" and values.ndim == 2 and values.shape[1] > 1 and (per_output or kind != MULTILABEL):
            warn_rows_not_normalized(values, name=where)


def _check_response_values(where: str, values: np.ndarray, input_format: str) -> None:
    """The rules of :func:`~xent_metrics.functional._value_checks.score_problem`, worded to name the estimator."""
    lo, hi = float(values.min()), float(values.max())
    problem = _value_checks.score_problem(lo, hi, input_format)
    if problem in ("nan", "inf"):
        raise ValueError(
            f"{where} returned NaN or inf in {_value_checks.count_not_finite(as_tensor(values), input_format)} of "
            f"{values.size} values; the estimator is numerically broken on this data (cannot score it)."
        )
    if problem is not None and input_format == "probs":
        raise ValueError(
            f"{where} returned probabilities outside [0, 1] (from {lo:.6g} to {hi:.6g}); the estimator is "
            "broken on this data (cannot score it)."
        )
    if problem is not None:
        raise ValueError(f"{where} returned log-probabilities above 0 (up to {hi:.6g}); they must be <= 0.")


def _as_float(where: str, part: object) -> np.ndarray:
    """The response as a float array in the dtype it is scored in, or ``ValueError`` naming where it came from.

    A float32 response stays float32: its rows are checked against float32's tolerance, as ``log_loss`` checks them.
    """
    if part is None:
        raise ValueError(f"{where} returned None, not an array of scores; cannot score it.")
    try:
        values = np.asarray(part)
        if values.dtype.kind == "c":
            raise TypeError(f"complex dtype {values.dtype}")
        return values.astype(score_dtype(values.dtype), copy=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} returned non-numeric values ({type(part).__name__}): {err}") from err


@dataclass(kw_only=True, eq=False, repr=False)
class CrossEntropyScorer(SharedResponseScorer):
    """Scorer returning minus :func:`cross_entropy_loss` (or :func:`d2_cross_entropy_score`) of a response.

    Greater is better either way. Build it with :func:`make_cross_entropy_scorer`; the parameters are
    those of that function. Called as ``scorer(estimator, X, y_true, sample_weight=None)``, as
    scikit-learn calls scorers.

    Shape
    -----
    - ``X``: what the estimator's ``response_method`` takes, ``(n_samples, n_features)`` for an array.
    - ``y_true``: ``(n_samples,)`` labels, or ``(n_samples, n_labels)`` indicators.
    - ``sample_weight``: ``(n_samples,)``.
    - Output: a float.
    """

    task: str = "auto"
    labels: object = None
    input_format: str = "probs"
    response_method: str = "predict_proba"
    average: str = "micro"
    d2: bool = False
    #: scikit-learn's default: routing ``sample_weight`` is an error until requested
    _sample_weight_request: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        _validation.check_choice("task", self.task, ("auto", *_validation.TASKS))
        _validation.check_flag("d2", bool(self.d2) if isinstance(self.d2, np.bool_) else self.d2)
        averages = [a for a in _validation.AVERAGES if a != "none"]
        _validation.check_format_and_average(self.input_format, self.average, SCORE_FORMATS, averages)
        if not isinstance(self.response_method, str):
            raise TypeError(
                f"`response_method` must be a method name (str), got {type(self.response_method).__name__}."
            )
        expected = RESPONSE_FORMATS.get(self.response_method, self.input_format)
        if expected != self.input_format:
            raise ValueError(
                f"response_method={self.response_method!r} returns {expected}; got input_format={self.input_format!r}. "
                f"Pass input_format={expected!r}."
            )
        self.d2 = bool(self.d2)
        self.labels = None if self.labels is None else np.asarray(self.labels).tolist()

    def __repr__(self) -> str:
        options = [f for f in fields(self) if f.init and f.name != "response_method"]
        extra = "".join(f", {f.name}={getattr(self, f.name)!r}" for f in options if getattr(self, f.name) != f.default)
        return f"make_cross_entropy_scorer(response_method={self.response_method!r}{extra})"

    def set_score_request(self, *, sample_weight: Any = UNCHANGED) -> CrossEntropyScorer:
        """Request ``sample_weight`` through metadata routing (``sklearn.set_config(enable_metadata_routing=True)``).

        Parameters
        ----------
        sample_weight : bool, None or str
            True: routed to this scorer; False: not; None: an error if passed; a str: the alias.

        Returns
        -------
        CrossEntropyScorer
            ``self``, updated (as scikit-learn's scorers do).
        """
        if not sklearn.get_config()["enable_metadata_routing"]:
            raise RuntimeError(
                "This method is only available when metadata routing is enabled. You can enable it using "
                "sklearn.set_config(enable_metadata_routing=True)."
            )
        if sample_weight is not UNCHANGED:
            self._sample_weight_request = sample_weight
        return self

    def get_metadata_routing(self) -> MetadataRequest:
        """Return the scorer's metadata request (its ``score`` method may take ``sample_weight``)."""
        request = MetadataRequest(owner=self)
        request.score.add_request(param="sample_weight", alias=self._sample_weight_request)
        return request

    def __call__(self, estimator: object, X: object, y_true: object, sample_weight: object = None) -> float:
        """Return ``-cross_entropy_loss`` (or the D² score) of ``estimator``'s response on ``X`` against ``y_true``."""
        return self._score_response(None, estimator, X, y_true, sample_weight)

    def _score_response(
        self,
        cached: Callable[[str], Any] | None,
        estimator: object,
        X: object,
        y_true: object,
        sample_weight: object = None,
    ) -> float:
        """The score; ``cached`` reads scikit-learn's multi-metric response cache (None: call the estimator)."""
        kind = target_type(y_true)
        self._check_task(kind)
        method = getattr(estimator, self.response_method, None)
        if method is None:
            raise AttributeError(self._no_method(estimator))
        if self.response_method == "decision_function":
            _refuse_one_vs_one(estimator)
        shared = None if cached is None or kind == MULTILABEL else cached_response(cached, estimator, self)
        response = method(X) if shared is None else shared
        _check_response(estimator, self.response_method, response, self.input_format, kind)
        if kind == MULTILABEL:
            return self._multilabel(estimator, response, y_true, sample_weight)
        scores, classes = self._align(estimator, response, class_targets(y_true))
        return self._value(kind, y_true, scores, classes, sample_weight)

    def _no_method(self, estimator: object) -> str:
        """The missing-method message; a model with margins only is pointed to the logits scorer."""
        message = f"{_name(estimator)} has no method {self.response_method!r}; cannot score it."
        if self.response_method != "predict_proba" or getattr(estimator, "decision_function", None) is None:
            return message
        name = "d2_cross_entropy_logits" if self.d2 else "neg_cross_entropy_logits"
        return (
            f"{message} It has decision_function: score its margins with xent_metrics.scoring.get_scorer({name!r}) "
            f"(make_cross_entropy_scorer(response_method='decision_function', input_format='logits'"
            f"{', d2=True' if self.d2 else ''})), or make it give probabilities (SVC(probability=True))."
        )

    def _value(self, kind: str, y_true: object, scores: object, labels: object, sample_weight: object) -> float:
        """The D² score, or minus the loss: greater is better. The response's values were checked already."""
        if self.d2:
            check_d2_average(kind, self.average)
        batch = score_batch(kind, y_true, scores, labels, sample_weight, self.input_format, check_values=False)
        sums = batch_sums(batch)
        if self.d2:
            return float(d2_value(kind, sums, self.average, sample_weight))
        return -float(loss_value(kind, sums, self.average, normalize=True))

    def _check_task(self, kind: str) -> None:
        if self.task == "multilabel" and kind != MULTILABEL:
            raise ValueError(f"task='multilabel' needs a multilabel indicator `y_true`, got a {kind!r} target.")
        if self.task in ("binary", "multiclass") and kind == MULTILABEL:
            raise ValueError(f"task={self.task!r} needs class labels `y_true`, got a multilabel indicator matrix.")
        if self.labels is not None and kind == MULTILABEL:
            raise ValueError("`labels` is for class labels; a multilabel `y_true` takes the estimator's classes_.")

    def _classes(self, estimator: object) -> np.ndarray:
        classes = getattr(estimator, "classes_", None)
        if classes is None or isinstance(classes, list | tuple) or np.ndim(classes) != 1:
            raise ValueError(
                f"{_name(estimator)} has no single `classes_` array; a binary or multiclass scorer needs a fitted "
                "classifier."
            )
        return np.asarray(classes)

    def _align(self, estimator: object, response: object, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the response with one column per class of the label space, and that space's classes."""
        fitted = self._classes(estimator)
        scores = np.asarray(response)
        self._check_shape(estimator, scores, fitted, y.shape[0])
        if self.labels is None:
            unseen = sorted(set(np.unique(y).tolist()) - set(fitted.tolist()), key=str)
            if unseen:
                raise ValueError(
                    f"y_true contains class(es) {unseen} that {_name(estimator)} never saw in training (its classes_ "
                    f"are {fitted.tolist()}): the training fold lacked them. Pass labels=<all classes> to "
                    "make_cross_entropy_scorer, or use stratified folds."
                )
            if fitted.shape[0] < 2:
                raise ValueError(
                    f"{_name(estimator)} saw a single class {fitted.tolist()} in training; pass labels=<all classes> "
                    "to make_cross_entropy_scorer to score it."
                )
            space = fitted
        else:
            space = np.unique(np.asarray(self.labels))
            extra = sorted(set(fitted.tolist()) - set(space.tolist()), key=str)
            if extra:
                raise ValueError(
                    f"{_name(estimator)}.classes_ has class(es) {extra} missing from labels {self.labels}."
                )
            if space.shape[0] != fitted.shape[0]:
                scores = self._pad(estimator, scores, fitted, space)
        if self.task == "binary" and space.shape[0] != 2:
            raise ValueError(f"task='binary' needs exactly two classes, got {space.tolist()}.")
        if space.shape[0] == 2 and self.input_format == "probs":
            scores = scores[:, 1]  # the positive column, exactly as scikit-learn's neg_log_loss scorer
        return scores, space

    def _check_shape(self, estimator: object, scores: np.ndarray, fitted: np.ndarray, num_samples: int) -> None:
        margins = self.input_format == "logits" and fitted.shape[0] == 2
        expected = (num_samples,) if margins else (num_samples, fitted.shape[0])
        if scores.shape != expected:
            raise ValueError(
                f"{_name(estimator)}.{self.response_method}(X) returned shape {scores.shape}; expected {expected} "
                f"for {num_samples} samples and classes_ {fitted.tolist()}."
            )

    def _pad(self, estimator: object, scores: np.ndarray, fitted: np.ndarray, space: np.ndarray) -> np.ndarray:
        """Scatter the fitted classes' columns into the label space; absent classes get probability 0, clipped."""
        if self.input_format == "logits":
            raise ValueError(
                f"{_name(estimator)} saw classes {fitted.tolist()} of labels {space.tolist()}: decision_function "
                "margins cannot be extended to unseen classes; use response_method='predict_proba'."
            )
        return pad_classes(scores, np.searchsorted(space, fitted), space.shape[0], self.input_format)

    def _multilabel(self, estimator: object, response: Any, y_true: object, sample_weight: object) -> float:
        target = indicator_targets(y_true)
        classes = getattr(estimator, "classes_", None)
        is_list = isinstance(response, list | tuple)
        if is_list and len(response) != target.shape[1]:
            raise ValueError(
                f"{_name(estimator)}.{self.response_method}(X) returned {len(response)} arrays for {target.shape[1]} "
                "labels of y_true."
            )
        if not is_list and np.shape(response) != target.shape:
            raise ValueError(
                f"{_name(estimator)}.{self.response_method}(X) returned shape {np.shape(response)}; expected "
                f"{target.shape}, one score per label."
            )
        labels = list(classes) if is_list and isinstance(classes, list | tuple) else None
        return self._value(MULTILABEL, target, list(response) if is_list else response, labels, sample_weight)


def make_cross_entropy_scorer(
    *,
    task: str = "auto",
    labels: object = None,
    input_format: str = "probs",
    response_method: str = "predict_proba",
    average: str = "micro",
    d2: bool = False,
) -> CrossEntropyScorer:
    """Make a scorer (greater is better: minus the loss, or D²) for ``cross_val_score``, ``GridSearchCV``, ...

    Like ``make_scorer(log_loss, greater_is_better=False, response_method="predict_proba")`` but the
    columns of the response are matched to the fitted estimator's ``classes_``: a test fold that
    lacks a class scores right (``neg_log_loss`` gives ``nan``), multilabel targets get the true
    mean per-label binary cross-entropy, and margins are scored through a stable softmax / sigmoid.

    Parameters
    ----------
    task : {"auto", "binary", "multiclass", "multilabel"}, default="auto"
        ``"auto"`` reads it from ``y_true`` (an indicator matrix is multilabel); otherwise a mismatch
        between ``task`` and ``y_true`` raises.
    labels : array-like, optional
        All classes. Without it the estimator's ``classes_`` are the label space and a test class the
        estimator never saw raises; with it, classes a training fold lacked get probability 0 in the
        response's dtype, clipped to that dtype's ``eps`` (a float32 ``predict_proba`` keeps float32's:
        the score is ``log_loss`` of the padded array), or ``log(eps)`` as log-probabilities: the same
        score. Binary / multiclass only.
    input_format : {"probs", "logits", "log_probs"}, default="probs"
        How the response is read; must match ``response_method`` when that is a standard method.
    response_method : str, default="predict_proba"
        ``"predict_proba"`` (probs), ``"decision_function"`` (logits), ``"predict_log_proba"``
        (log_probs), or another method name of your estimators.
    average : {"micro", "macro"}, default="micro"
        As in :func:`cross_entropy_loss` (:func:`d2_cross_entropy_score` with ``d2``: ``"macro"`` is
        for multilabel targets only there).
    d2 : bool, default=False
        Score with :func:`d2_cross_entropy_score` (1 perfect, 0 the class prior; greater is better)
        instead of minus the loss.

    Returns
    -------
    CrossEntropyScorer
        Picklable (``n_jobs`` works); ``set_score_request(sample_weight=True)`` routes weights.

    Raises
    ------
    ValueError
        An unknown option, or ``input_format`` not matching ``response_method``.
    TypeError
        ``response_method`` not a str.

    See Also
    --------
    cross_entropy_loss : The loss this scorer negates.
    d2_cross_entropy_score : The score of ``d2=True``.
    get_scorer : A fresh scorer by name.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import KFold, cross_val_score
    >>> from xent_metrics.scoring import make_cross_entropy_scorer
    >>> from xent_metrics.scoring import neg_cross_entropy_scorer
    >>> X, y = load_iris(return_X_y=True)  # sorted by class: unshuffled test folds lack classes
    >>> model = LogisticRegression(max_iter=1000)
    >>> cross_val_score(model, X, y, cv=KFold(5), scoring=neg_cross_entropy_scorer).round(3)  # neg_log_loss: nan
    array([-0.062, -0.099, -0.403, -0.181, -0.375])
    >>> make_cross_entropy_scorer(labels=["a", "b", "c"], input_format="log_probs", response_method="predict_log_proba")
    make_cross_entropy_scorer(response_method='predict_log_proba', labels=['a', 'b', 'c'], input_format='log_probs')
    """
    return CrossEntropyScorer(
        task=task,
        labels=labels,
        input_format=input_format,
        response_method=response_method,
        average=average,
        d2=d2,
    )


#: Ready-made ``make_cross_entropy_scorer()``: the drop-in for ``scoring="neg_log_loss"``. Shared by
#: every importer: for metadata routing take your own copy, ``get_scorer("neg_cross_entropy")``
#: (``set_score_request`` updates the scorer it is called on).
neg_cross_entropy_scorer = make_cross_entropy_scorer()
#: Ready-made ``make_cross_entropy_scorer(d2=True)``: the drop-in for ``scoring="d2_log_loss_score"``.
#: Shared as ``neg_cross_entropy_scorer`` is: take your own with ``get_scorer("d2_cross_entropy")``.
d2_cross_entropy_scorer = make_cross_entropy_scorer(d2=True)
