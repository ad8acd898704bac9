"""Lightning callbacks (import ``lightning``; never imported by ``import xent_metrics``)."""

from xent_metrics.callbacks._sampler import UnpaddedDistributedSampler

__all__ = ["UnpaddedDistributedSampler"]
