"""The training shuffle: one permutation per (seed, epoch), each DDP rank its slice, handed out in slices; and the
loader that resumes it mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


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
        self.skip = 0  # windows of this rank's share to leave out, once: those of a resumed epoch's done batches

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]
        if self.total_size > len(order):  # every rank gets as many windows: repeat the first few
            order = torch.cat([order, order[: self.total_size - len(order)]])
        skip, self.skip = self.skip, 0
        for part in order[self.rank : self.total_size : self.num_replicas][skip:].split(1 << 16):
            yield from part.tolist()


class ResumableLoader(DataLoader):
    """The training loader, resumable mid-epoch the way Lightning resumes a loader (its ``state_dict`` is kept in
    the checkpoint, and given back when the run resumes inside an epoch): the epoch's batches that were done, counted
    by ``batches_done()`` when the checkpoint is saved, are left out of the next pass of its
    :class:`EpochSeededSampler`, so the run continues with the batch it had reached."""

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint keeps: the batches of the current epoch done."""
        return {"batches_done": self.batches_done()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Leave out the done batches of the epoch that resumes."""
        self.sampler.skip = int(state["batches_done"]) * int(self.batch_size or 1)  # type: ignore[attr-defined]
