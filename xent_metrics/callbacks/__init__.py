"""Lightning callbacks (import ``lightning``; never imported by ``import xent_metrics``).

- :class:`PerClassBCEMonitor`: per-label binary cross-entropy of a multi-label model, logged per
  stage and epoch, with an end-of-fit table and heatmap.
- :class:`PerClassCEMonitor`: the same for a multiclass model, per true class.
- :class:`UnpaddedDistributedSampler`: shards evaluation data across processes without the
  duplicates Lightning's default ``DistributedSampler`` adds.
"""

from xent_metrics.callbacks._bce_monitor import PerClassBCEMonitor
from xent_metrics.callbacks._ce_monitor import PerClassCEMonitor
from xent_metrics.callbacks._sampler import UnpaddedDistributedSampler

__all__ = ["PerClassBCEMonitor", "PerClassCEMonitor", "UnpaddedDistributedSampler"]
