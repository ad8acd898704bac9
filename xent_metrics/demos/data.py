"""The digit-tags task for Lightning: splits, an epoch-seeded sampler and the ``LightningDataModule``.

The data itself (scikit-learn's 8x8 digits with 7 human-readable tags) is built by
:mod:`xent_metrics.demos.tags`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, Subset, TensorDataset

from xent_metrics.demos.tags import TAGS, digit_tags


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into train, val and test index arrays.

    Examples
    --------
    >>> [len(part) for part in split_indices(10, 0.2, 0.3, seed=0)]
    [5, 2, 3]
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"`val_fraction` + `test_fraction` must be below 1 to leave training data, got "
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}."
        )
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


class EpochSeededSampler(Sampler[int]):
    """A random permutation drawn from ``seed + epoch``: a resumed run sees the same order as an uninterrupted one.

    Lightning calls ``set_epoch`` at the start of every training epoch. (A ``RandomSampler`` draws
    from a generator whose state a checkpoint does not hold.)

    Examples
    --------
    >>> sampler = EpochSeededSampler(5, seed=0)
    >>> first = list(sampler)
    >>> sampler.set_epoch(1)
    >>> sorted(list(sampler)) == sorted(first) == [0, 1, 2, 3, 4], list(sampler) != first
    (True, True)
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class DigitTagsDataModule(pl.LightningDataModule):
    """Train / val / test loaders of the digit-tags data set.

    Validation and test loaders use :class:`~xent_metrics.callbacks.UnpaddedDistributedSampler`,
    so under DDP every sample is evaluated exactly once (Lightning's default sampler pads the last
    shard with duplicates). Set ``unpadded_eval_sampler=False`` to see the bias and the warning.

    Parameters
    ----------
    batch_size : int, default=64
        Samples per batch (per process).
    val_fraction, test_fraction : float, default=0.2
        Shares of the 1797 images held out for validation and test.
    seed : int, default=0
        Seed of the split and of the training shuffle (one permutation per epoch, see
        :class:`EpochSeededSampler`).
    max_samples : int, optional
        Use only the first ``max_samples`` images (after shuffling): for fast tests.
    unpadded_eval_sampler : bool, default=True
        Shard validation and test data without duplicates under DDP.
    num_workers : int, default=0
        ``DataLoader`` worker processes.

    Examples
    --------
    >>> dm = DigitTagsDataModule(max_samples=100, val_fraction=0.25, test_fraction=0.25)
    >>> dm.setup("fit")
    >>> len(dm.train_set), len(dm.val_set), dm.label_names[0]
    (50, 25, 'even')
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
        max_samples: int | None = None,
        unpadded_eval_sampler: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.label_names = list(TAGS)
        self.num_labels = len(TAGS)
        self.num_features = 64

    def setup(self, stage: str | None = None) -> None:
        """Load the data and split it (every stage sees the same split)."""
        hp: Any = self.hparams
        X, Y, _ = digit_tags()
        n = len(X) if hp.max_samples is None else min(hp.max_samples, len(X))
        order = np.random.default_rng(hp.seed).permutation(len(X))[:n]
        dataset = TensorDataset(torch.as_tensor(X[order], dtype=torch.float32), torch.as_tensor(Y[order]))
        train, val, test = split_indices(n, hp.val_fraction, hp.test_fraction, hp.seed)
        self.train_set, self.val_set, self.test_set = (Subset(dataset, idx.tolist()) for idx in (train, val, test))

    def _loader(self, dataset: Any, *, shuffle: bool) -> DataLoader:
        hp: Any = self.hparams
        if shuffle:
            shuffled = EpochSeededSampler(len(dataset), seed=hp.seed)
            return DataLoader(dataset, batch_size=hp.batch_size, sampler=shuffled, num_workers=hp.num_workers)
        sampler: Sampler[int] | None = None
        if hp.unpadded_eval_sampler:
            from xent_metrics.callbacks import UnpaddedDistributedSampler

            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(dataset, batch_size=hp.batch_size, sampler=sampler, num_workers=hp.num_workers)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches, sharded without duplicates under DDP."""
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches, sharded without duplicates under DDP."""
        return self._loader(self.test_set, shuffle=False)
