"""The training losses between two reads: their mean for the logger, and the first that was not finite, kept on the
loss's device so that a step never reads the loss back to the host."""

from __future__ import annotations

import torch
from torch import Tensor

from forecast.errors import TrainingDivergedError, option


class LossWatch:
    """Remembers, on the loss's device, the sum of the training losses since the last :meth:`take_mean` and the
    first step whose loss was not finite.

    :meth:`update` runs each step and only launches device operations (no host sync). :meth:`take_mean` gives the
    mean loss of the steps since it was last called (a device scalar; the logger reads it) and starts a new sum;
    :meth:`check` reads the record back (one sync) and raises :class:`TrainingDivergedError` naming that first step.
    The model does both every ``trainer.log_every_n_steps`` steps, when Lightning writes step metrics; it also checks
    at the end of each training epoch and before any checkpoint is saved, so at most that many steps run on after a
    divergence and no checkpoint ever holds its weights.
    """

    def __init__(self) -> None:
        # (first bad step, its epoch, its loss): step -1 while every loss has been finite
        self._record: Tensor | None = None
        self._sum: Tensor | None = None
        self._count = 0

    def update(self, loss: Tensor, step: int, epoch: int, check: bool = False) -> None:
        """Note ``loss`` (a scalar) of optimizer step ``step`` in ``epoch``: device work only, then :meth:`check`
        when ``check``."""
        loss = loss.detach().double()
        if self._record is None:
            self._record = torch.tensor([-1.0, -1.0, 0.0], dtype=torch.float64, device=loss.device)
        first = (~torch.isfinite(loss)) & (self._record[0] < 0)
        now = torch.stack([torch.full_like(loss, step), torch.full_like(loss, epoch), loss])
        self._record = torch.where(first, now, self._record)
        self._sum = loss if self._sum is None else self._sum + loss
        self._count += 1
        if check:
            self.check()

    def take_mean(self) -> Tensor:
        """The mean loss ``()`` float64 of the steps noted since the last call (NaN if none), on their device."""
        mean = self._sum / self._count if self._sum is not None else torch.tensor(float("nan"), dtype=torch.float64)
        self._sum, self._count = None, 0
        return mean

    def check(self) -> None:
        """Raise :class:`TrainingDivergedError` if a noted loss was not finite (one read back to the host)."""
        if self._record is None:
            return
        step, epoch, value = self._record.tolist()
        if step >= 0:
            raise TrainingDivergedError(
                f"the training loss became {value} at epoch {int(epoch)}, step {int(step)}; try a lower learning rate "
                f"({option('model.optimizer.lr', 'lr')}), gradient clipping ({option('trainer.gradient_clip_val')} "
                f"1.0) or a larger {option('model.init_lam')}"
            )

    def reset(self) -> None:
        """Forget what was noted (a new fit)."""
        self._record, self._sum, self._count = None, None, 0
