"""xent-metrics: exact, fast cross-entropy metrics for PyTorch, Lightning and scikit-learn."""

from xent_metrics import functional
from xent_metrics.metrics import (
    BinaryCrossEntropy,
    BinaryNormalizedEntropy,
    MulticlassCrossEntropy,
    MulticlassNormalizedEntropy,
    MultilabelCrossEntropy,
    MultilabelNormalizedEntropy,
    Perplexity,
)

__version__ = "0.1.0"

__all__ = [
    "BinaryCrossEntropy",
    "BinaryNormalizedEntropy",
    "MulticlassCrossEntropy",
    "MulticlassNormalizedEntropy",
    "MultilabelCrossEntropy",
    "MultilabelNormalizedEntropy",
    "Perplexity",
    "functional",
]
