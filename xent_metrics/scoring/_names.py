"""Scorers by name: ``get_scorer`` builds a fresh one per call, as :func:`sklearn.metrics.get_scorer` copies."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from xent_metrics.scoring._scorer import CrossEntropyScorer, make_cross_entropy_scorer

_LOGITS = MappingProxyType({"response_method": "decision_function", "input_format": "logits"})
_LOG_PROBS = MappingProxyType({"response_method": "predict_log_proba", "input_format": "log_probs"})

#: Name -> the options of :func:`make_cross_entropy_scorer` (read-only).
_SCORERS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "neg_cross_entropy": MappingProxyType({}),
        "neg_cross_entropy_logits": _LOGITS,
        "neg_cross_entropy_log_probs": _LOG_PROBS,
        "d2_cross_entropy": MappingProxyType({"d2": True}),
        "d2_cross_entropy_logits": MappingProxyType({"d2": True, **_LOGITS}),
    }
)


def get_scorer_names() -> list[str]:
    """Return the names :func:`get_scorer` takes, sorted.

    Returns
    -------
    list of str
        ``"neg_cross_entropy*"`` score minus the loss (``predict_proba``; ``_logits``:
        ``decision_function``; ``_log_probs``: ``predict_log_proba``), ``"d2_cross_entropy*"`` the
        D² score; all greater is better.

    Examples
    --------
    >>> from xent_metrics.scoring import get_scorer_names
    >>> get_scorer_names()  # doctest: +NORMALIZE_WHITESPACE
    ['d2_cross_entropy', 'd2_cross_entropy_logits', 'neg_cross_entropy', 'neg_cross_entropy_log_probs',
     'neg_cross_entropy_logits']
    """
    return sorted(_SCORERS)


def get_scorer(name: str) -> CrossEntropyScorer:
    """Return a new scorer for ``name``, owned by the caller, like :func:`sklearn.metrics.get_scorer`.

    The module-level ``neg_cross_entropy_scorer`` and ``d2_cross_entropy_scorer`` are shared by
    everyone who imports them, so ``set_score_request`` on them changes them for all; a scorer from
    here changes for its owner only.

    scikit-learn's own registry of names is closed: ``scoring="neg_cross_entropy"`` as a plain string
    fails inside scikit-learn (``InvalidParameterError``). Pass the object instead,
    ``scoring=get_scorer("neg_cross_entropy")``, or a dict of them with scikit-learn's names, as in
    ``scoring={"ce": get_scorer("neg_cross_entropy"), "ll": "neg_log_loss"}``: in a dict they share
    scikit-learn's response cache, one ``predict_proba`` call per split for all of them.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`.

    Returns
    -------
    CrossEntropyScorer
        A fresh scorer, as :func:`make_cross_entropy_scorer` builds it for that name.

    Raises
    ------
    TypeError
        ``name`` not a str.
    ValueError
        An unknown ``name``; the message lists the valid ones.

    See Also
    --------
    make_cross_entropy_scorer : Any other combination of options.

    Examples
    --------
    >>> import sklearn
    >>> from xent_metrics.scoring import get_scorer, neg_cross_entropy_scorer
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     mine = get_scorer("neg_cross_entropy").set_score_request(sample_weight=True)
    >>> mine.get_metadata_routing().score.requests, neg_cross_entropy_scorer.get_metadata_routing().score.requests
    ({'sample_weight': True}, {'sample_weight': None})
    >>> get_scorer("d2_cross_entropy_logits")
    make_cross_entropy_scorer(response_method='decision_function', input_format='logits', d2=True)
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a scorer name (str), got {type(name).__name__} {name!r}.")
    options = _SCORERS.get(name)
    if options is None:
        raise ValueError(f"{name!r} is not a valid scorer name: `name` must be one of {get_scorer_names()}.")
    return make_cross_entropy_scorer(**options)
