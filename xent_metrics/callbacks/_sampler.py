"""A distributed sampler that shards evaluation data without duplicates, and the check for padding."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    """Shard a data set across processes so that every sample is seen exactly once.

    :class:`torch.utils.data.DistributedSampler` (which Lightning injects under DDP) pads the last
    shard with repeated samples so that every rank gets the same number, which biases every
    evaluation metric; ``drop_last=True`` drops samples instead. This sampler gives rank ``r`` the
    indices ``r, r + W, r + 2W, ...`` of the (optionally shuffled) data set: shards differ by at
    most one sample and their union is the data set. Lightning leaves it in place (it is a
    ``DistributedSampler``), so the fix is one line in ``val_dataloader`` / ``test_dataloader``::

        DataLoader(val_set, batch_size=64, sampler=UnpaddedDistributedSampler(val_set))

    Ranks may then run a different number of batches, which is fine for evaluation as long as the
    step itself runs no collective (``self.log(..., sync_dist=True)`` syncs at epoch end, which is
    fine; a model whose forward broadcasts buffers under DDP, e.g. BatchNorm with
    ``broadcast_buffers=True``, is not).

    Parameters
    ----------
    dataset : Sized
        The data set to shard.
    num_replicas, rank : int, optional
        The world size and this process's rank; read from ``torch.distributed`` when it is
        initialized, else ``1`` and ``0`` (one process sees everything, in order).
    shuffle : bool, default=False
        Shuffle with ``seed + epoch`` (call ``set_epoch``) before sharding.
    seed : int, default=0
        The shuffle seed, identical on every rank.

    Examples
    --------
    >>> data = list(range(5))
    >>> [list(UnpaddedDistributedSampler(data, num_replicas=2, rank=r)) for r in (0, 1)]
    [[0, 2, 4], [1, 3]]
    >>> [len(UnpaddedDistributedSampler(data, num_replicas=2, rank=r)) for r in (0, 1)]
    [3, 2]
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        initialized = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialized else 1
        if rank is None:
            rank = dist.get_rank() if initialized else 0
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.total_size = len(dataset)
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=generator).tolist()
        else:
            indices = list(range(self.total_size))
        return iter(indices[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


def sampler_mismatch(sampler: object) -> tuple[int, int] | None:
    """Return ``(samples the shards cover, data set size)`` when a distributed sampler pads or drops.

    ``None`` when ``sampler`` is not a ``DistributedSampler`` or its shards cover the data set
    exactly once.

    Examples
    --------
    >>> from torch.utils.data import DistributedSampler
    >>> sampler_mismatch(DistributedSampler(list(range(5)), num_replicas=2, rank=0))
    (6, 5)
    >>> sampler_mismatch(UnpaddedDistributedSampler(list(range(5)), num_replicas=2, rank=0)) is None
    True
    """
    if not isinstance(sampler, DistributedSampler):
        return None
    dataset = getattr(sampler, "dataset", None)
    if not isinstance(dataset, Sized):
        return None
    covered = int(sampler.total_size)
    return None if covered == len(dataset) else (covered, len(dataset))
