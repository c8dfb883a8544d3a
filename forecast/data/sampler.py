"""The training shuffle: one permutation per (seed, epoch), each DDP rank its slice, handed out in slices."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler


class EpochSeededSampler(DistributedSampler):
    """A random permutation of the windows that depends only on ``(seed, epoch)``, sharded over ``num_replicas``.

    Lightning calls ``set_epoch`` each epoch, so a run resumed from a checkpoint draws the same batches as an
    uninterrupted one (``RandomSampler`` would depend on the global RNG state instead). Under DDP each rank takes
    every ``num_replicas``-th window of the same permutation, padded like ``DistributedSampler``; being one,
    Lightning keeps it. The permutation stays a tensor (8 bytes a window) and is handed out a slice at a time:
    ``DistributedSampler`` makes it a Python list, 36 bytes a window, on every rank.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]
        if self.total_size > len(order):  # every rank gets as many windows: repeat the first few
            order = torch.cat([order, order[: self.total_size - len(order)]])
        for part in order[self.rank : self.total_size : self.num_replicas].split(1 << 16):
            yield from part.tolist()
