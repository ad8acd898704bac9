"""Pure cross-entropy math: tensors in, float64 results out.

Each task follows the same steps: its options checked once into one frozen object
(:mod:`xent_metrics.functional._options`), tensor validation, a kernel returning a ``(3, K)`` float64
tensor of sums (see :mod:`xent_metrics.functional._sums`), and a compute from those sums.
The Metric classes reuse the same steps, so results are exact whatever the batch split.
"""

from xent_metrics.functional.binary import binary_cross_entropy, binary_normalized_entropy
from xent_metrics.functional.dispatch import cross_entropy, normalized_entropy
from xent_metrics.functional.linear import linear_cross_entropy
from xent_metrics.functional.multiclass import multiclass_cross_entropy, multiclass_normalized_entropy
from xent_metrics.functional.multilabel import multilabel_cross_entropy, multilabel_normalized_entropy

__all__ = [
    "binary_cross_entropy",
    "binary_normalized_entropy",
    "cross_entropy",
    "linear_cross_entropy",
    "multiclass_cross_entropy",
    "multiclass_normalized_entropy",
    "multilabel_cross_entropy",
    "multilabel_normalized_entropy",
    "normalized_entropy",
]
