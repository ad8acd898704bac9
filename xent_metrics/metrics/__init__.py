"""torchmetrics ``Metric`` classes over the functional core: validate, compute the batch sums, ``+=``.

Each class holds one ``(3, K)`` float64 ``sums`` state (see :mod:`xent_metrics.functional._sums`),
reduced across processes by a single ``all_reduce``; results are exact whatever the batch split.
"""

from xent_metrics.metrics.binary import BinaryCrossEntropy, BinaryNormalizedEntropy
from xent_metrics.metrics.multiclass import MulticlassCrossEntropy, MulticlassNormalizedEntropy
from xent_metrics.metrics.multilabel import MultilabelCrossEntropy, MultilabelNormalizedEntropy
from xent_metrics.metrics.perplexity import Perplexity

__all__ = [
    "BinaryCrossEntropy",
    "BinaryNormalizedEntropy",
    "MulticlassCrossEntropy",
    "MulticlassNormalizedEntropy",
    "MultilabelCrossEntropy",
    "MultilabelNormalizedEntropy",
    "Perplexity",
]
