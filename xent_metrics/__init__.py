"""xent-metrics: exact, fast cross-entropy metrics for PyTorch, Lightning and scikit-learn."""

from xent_metrics import functional, metrics
from xent_metrics.metrics import *  # noqa: F403  (the Metric classes, listed once in metrics.__all__)
from xent_metrics.metrics._paired import PairedDifference

__version__ = "0.1.0"

__all__ = [*metrics.__all__, "PairedDifference", "functional"]
