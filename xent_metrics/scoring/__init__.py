"""scikit-learn face: a cross-entropy score function and scorers, on the functional core.

``cross_entropy_loss`` equals :func:`sklearn.metrics.log_loss` on binary and multiclass input and
gives the true mean per-label binary cross-entropy on multilabel input (``log_loss`` drops the
``(1 - y) log(1 - p)`` terms there: scikit-learn issue #10157). ``make_cross_entropy_scorer`` and
``neg_cross_entropy_scorer`` plug it into ``cross_val_score``, ``GridSearchCV`` and anything that
takes ``scoring=``. This module imports scikit-learn; ``import xent_metrics`` does not.
"""

from xent_metrics.scoring._loss import cross_entropy_loss
from xent_metrics.scoring._scorer import CrossEntropyScorer, make_cross_entropy_scorer, neg_cross_entropy_scorer

__all__ = ["CrossEntropyScorer", "cross_entropy_loss", "make_cross_entropy_scorer", "neg_cross_entropy_scorer"]
