"""Stop a training whose loss is no longer finite, without reading the loss back to the host every step."""

from __future__ import annotations

import torch
from torch import Tensor

from forecast.errors import TrainingDivergedError, option


class DivergenceWatch:
    """Remembers, on the loss's device, the first step whose training loss was not finite.

    :meth:`update` runs each step and only launches device operations (no host sync); :meth:`check` reads the
    record back (one sync) and raises :class:`TrainingDivergedError` naming that first step. The model checks
    every ``trainer.log_every_n_steps`` steps, at the end of each training epoch and before any checkpoint is
    saved, so at most that many steps run on after a divergence and no checkpoint ever holds its weights.
    """

    def __init__(self) -> None:
        # (first bad step, its epoch, its loss): step -1 while every loss has been finite
        self._record: Tensor | None = None

    def update(self, loss: Tensor, step: int, epoch: int, check: bool = False) -> None:
        """Note ``loss`` (a scalar) of optimizer step ``step`` in ``epoch``: device work only, then :meth:`check`
        when ``check``."""
        loss = loss.detach().double()
        if self._record is None:
            self._record = torch.tensor([-1.0, -1.0, 0.0], dtype=torch.float64, device=loss.device)
        first = (~torch.isfinite(loss)) & (self._record[0] < 0)
        now = torch.stack([torch.full_like(loss, step), torch.full_like(loss, epoch), loss])
        self._record = torch.where(first, now, self._record)
        if check:
            self.check()

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
        self._record = None
