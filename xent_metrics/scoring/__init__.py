"""scikit-learn face: cross-entropy and D² score functions and scorers, on the functional core.

``cross_entropy_loss`` equals :func:`sklearn.metrics.log_loss` on binary and multiclass input and
gives the true mean per-label binary cross-entropy on multilabel input (``log_loss`` drops the
``(1 - y) log(1 - p)`` terms there: scikit-learn issue #10157). ``d2_cross_entropy_score`` is the
fraction of it explained over the class prior (``1 - NE``), equal to ``d2_log_loss_score`` and
extended to multilabel targets and logits. ``make_cross_entropy_scorer``, ``get_scorer`` and the
shared ``neg_cross_entropy_scorer`` / ``d2_cross_entropy_scorer`` plug them into ``cross_val_score``,
``GridSearchCV`` and anything that takes ``scoring=``. This module imports scikit-learn;
``import xent_metrics`` does not.
"""

from xent_metrics.scoring._d2 import d2_cross_entropy_score
from xent_metrics.scoring._interval import cross_entropy_interval
from xent_metrics.scoring._loss import cross_entropy_loss
from xent_metrics.scoring._names import get_scorer, get_scorer_names
from xent_metrics.scoring._scorer import (
    CrossEntropyScorer,
    d2_cross_entropy_scorer,
    make_cross_entropy_scorer,
    neg_cross_entropy_scorer,
)

__all__ = [
    "CrossEntropyScorer",
    "cross_entropy_interval",
    "cross_entropy_loss",
    "d2_cross_entropy_score",
    "d2_cross_entropy_scorer",
    "get_scorer",
    "get_scorer_names",
    "make_cross_entropy_scorer",
    "neg_cross_entropy_scorer",
]
