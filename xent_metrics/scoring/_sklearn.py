"""The one module that touches scikit-learn's private scorer machinery, for :class:`~._scorer.CrossEntropyScorer`.

``cross_validate(scoring={...})`` and ``GridSearchCV(scoring={...})`` score through scikit-learn's
``_MultimetricScorer``, which calls ``predict_proba`` (or ``decision_function``) once per split and
hands the cached response to every scorer that is a ``_BaseScorer``, through its ``_score(method_caller,
...)``; any other callable is called plainly and calls the estimator again. :class:`SharedResponseScorer`
is that base, so ours share the call with ``"neg_log_loss"`` and with each other.

The cached value is what scikit-learn's ``_get_response_values`` returns: the estimator's response as
it is, except that a binary classifier's ``predict_proba`` / ``predict_log_proba`` is cut to the positive
column (``classes_[1]``) and multi-output lists are stacked. :func:`shares_response` says when that value
is what the scorer needs; otherwise the scorer calls the estimator itself, as before.

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
#: or ``"_BaseScorer"`` and the method ``_MultimetricScorer`` calls on it, or ``"_MultimetricScorer"`` and the
#: method that reads ``_response_method`` and the one that reads ``_accept_sample_weight``.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("sklearn.metrics._scorer", "_BaseScorer"),
    ("sklearn.metrics._scorer", "_MultimetricScorer"),
    ("sklearn.metrics._scorer", "_cached_call"),
    ("_BaseScorer", "_score"),
    ("_BaseScorer", "_accept_sample_weight"),
    ("_MultimetricScorer", "_use_cache"),
)

#: The response methods whose cached value :func:`shares_response` knows.
_KNOWN = ("predict_proba", "decision_function")


def shares_response(estimator: object, response_method: str, input_format: str, padded: bool) -> bool:
    """Whether scikit-learn's cached response is the estimator's own, or its positive column where that is all we use.

    Multiclass (three or more ``classes_``): the response as returned. Binary ``decision_function``: the margins
    as returned. Binary ``predict_proba`` unpadded: the positive column, the only one a binary score reads.
    Anything else (multilabel, ``predict_log_proba``, labels padding a binary fit, one class) is called directly.
    """
    classes = getattr(estimator, "classes_", None)
    if response_method not in _KNOWN or not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return False
    if classes.shape[0] > 2:
        return True
    return classes.shape[0] == 2 and (input_format == "logits" or not padded)


class SharedResponseScorer(_BaseScorer):  # type: ignore[misc]  # sklearn is untyped
    """A ``_BaseScorer`` by type only: ``_MultimetricScorer`` hands it its response cache.

    Subclasses keep their own ``__init__``, ``__call__``, ``__repr__`` and metadata routing; they give
    ``response_method`` and ``_score_response(get_response, estimator, X, y_true, sample_weight)``.
    """

    response_method: str

    @property
    def _response_method(self) -> str:  # read by _MultimetricScorer._use_cache
        return self.response_method

    def _accept_sample_weight(self) -> bool:  # read by _MultimetricScorer without metadata routing
        return True

    def _score(self, method_caller: Callable[..., Any], estimator: object, X: object, y_true: object, **kwargs: Any) -> float:
        """What ``_MultimetricScorer`` calls: the score, reading the response from its cache."""

        def cached(method: str) -> Any:
            return method_caller(estimator, method, X, pos_label=None)

        return self._score_response(cached, estimator, X, y_true, **kwargs)

    def _score_response(
        self, cached: Callable[[str], Any] | None, estimator: object, X: object, y_true: object, sample_weight: object = None
    ) -> float:
        raise NotImplementedError
