"""xent-metrics: exact, fast cross-entropy metrics for PyTorch, Lightning and scikit-learn."""

from xent_metrics import functional

__version__ = "0.1.0"

__all__ = ["functional"]
