"""The one module that touches scikit-learn's private scorer machinery, for :class:`~._scorer.CrossEntropyScorer`.

``cross_validate(scoring={...})`` and ``GridSearchCV(scoring={...})`` score through scikit-learn's
``_MultimetricScorer``, which calls ``predict_proba`` (or ``decision_function``) once per split and
hands the cached response to every scorer that is a ``_BaseScorer``, through its ``_score(method_caller,
...)``; any other callable is called plainly and calls the estimator again. :class:`SharedResponseScorer`
is that base, so ours share the call with ``"neg_log_loss"`` and with each other.

The cached value is what scikit-learn's ``_get_response_values`` returns: the estimator's response as
it is, except that a binary classifier's ``predict_proba`` / ``predict_log_proba`` is cut to the positive
column (``classes_[1]``) and multi-output lists are stacked. :func:`cached_response` reads it where that value
is what the scorer needs; otherwise the scorer calls the estimator itself.

Every private name relied on is listed in :data:`PRIVATE_NAMES`; ``tests/scoring/test_sklearn_adapter.py``
checks that each exists in the installed scikit-learn and that a multi-metric ``cross_validate`` calls
``predict_proba`` once per split, so a release that renames one fails there, naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics._scorer import _BaseScorer

#: Every scikit-learn private name this module relies on, as ``(where, name)``: a module and a name in it,
#: or a class of that module and a method it defines: ``_Scorer._score`` (scikit-learn's own scorers; the method
#: ``_MultimetricScorer.__call__`` calls on a ``_BaseScorer``), ``_BaseScorer._accept_sample_weight`` and
#: ``_MultimetricScorer._use_cache`` (which reads ``_response_method``).
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("sklearn.metrics._scorer", "_BaseScorer"),
    ("sklearn.metrics._scorer", "_MultimetricScorer"),
    ("sklearn.metrics._scorer", "_cached_call"),
    ("sklearn.metrics._scorer", "_Scorer"),
    ("_Scorer", "_score"),
    ("_BaseScorer", "_accept_sample_weight"),
    ("_MultimetricScorer", "_use_cache"),
)

#: The response methods whose cached value :func:`cached_response` knows.
_KNOWN = ("predict_proba", "decision_function")


def cached_response(cached: Callable[[str], Any], estimator: object, scorer: SharedResponseScorer) -> Any:
    """The response from scikit-learn's cache where it holds what ``scorer`` reads, else None (call the estimator).

    Multiclass (three or more ``classes_``): the response as returned. Binary ``decision_function``: the margins
    as returned. Binary ``predict_proba`` without ``labels``: the positive column, the only one a binary score
    reads, given back as the two columns ``[1 - p, p]``. Anything else (multilabel, ``predict_log_proba``, labels
    that may pad a binary fit, a single class) is not shared.
    """
    classes = getattr(estimator, "classes_", None)
    if scorer.response_method not in _KNOWN or not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return None
    binary_probs = classes.shape[0] == 2 and scorer.input_format == "probs"
    if classes.shape[0] < 2 or (binary_probs and scorer.labels is not None):
        return None
    response = cached(scorer.response_method)
    if binary_probs and np.ndim(response) == 1:
        positive = np.asarray(response)
        return np.stack([1 - positive, positive], axis=1)
    return response


class SharedResponseScorer(_BaseScorer):
    """A ``_BaseScorer`` by type only: ``_MultimetricScorer`` hands it its response cache.

    Subclasses keep their own ``__init__``, ``__call__``, ``__repr__`` and metadata routing; they give
    ``response_method``, ``input_format``, ``labels`` and ``_score_response``.
    """

    response_method: str
    input_format: str
    labels: object
    #: ``(cached, estimator, X, y_true, sample_weight=None) -> score``; ``cached(method)`` reads the cache
    _score_response: Callable[..., float]

    @property
    def _response_method(self) -> str:  # read by _MultimetricScorer._use_cache
        return self.response_method

    def _accept_sample_weight(self) -> bool:  # read by _MultimetricScorer without metadata routing
        return True

    def _score(
        self, method_caller: Callable[..., Any], estimator: object, X: object, y_true: object, **kwargs: Any
    ) -> float:
        """What ``_MultimetricScorer`` calls: the score, reading the response from its cache."""

        def cached(method: str) -> Any:
            return method_caller(estimator, method, X, pos_label=None)

        return self._score_response(cached, estimator, X, y_true, **kwargs)
