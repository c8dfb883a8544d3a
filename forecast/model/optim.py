"""The optimizer and LR schedule of a model: λ in its own parameter group, never weight-decayed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from forecast.errors import ConfigError, first_line, option
from forecast.model.blocks import RidgePostdiction


def optimizer_and_schedule(
    model: nn.Module,
    optimizer_factory: Callable[..., torch.optim.Optimizer] | None,
    scheduler_factory: Callable[..., Any] | None,
    lam_lr: float | None,
) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` result for ``model``: two named parameter groups, ``network`` and
    ``lambda`` (every ridge layer's λ; no weight decay, and ``lam_lr`` as its learning rate when given), the
    optimizer from ``optimizer_factory`` (default ``AdamW(lr=1e-3, weight_decay=1e-2)``) and the scheduler from
    ``scheduler_factory`` (default ``ExponentialLR(gamma=0.9)``), stepped each epoch (``OneCycleLR`` each step;
    ``ReduceLROnPlateau`` on ``val/mae``)."""
    lam_params = [p for m in model.modules() if isinstance(m, RidgePostdiction) for p in m.parameters()]
    lam_ids = {id(p) for p in lam_params}
    network = [p for p in model.parameters() if id(p) not in lam_ids]
    # named groups: LearningRateMonitor logs them as lr-<Optimizer>/network and lr-<Optimizer>/lambda
    lam_group: dict[str, Any] = {"params": lam_params, "weight_decay": 0.0, "name": "lambda"}
    if lam_lr is not None:
        lam_group["lr"] = lam_lr
    groups = [{"params": network, "name": "network"}, lam_group]
    if optimizer_factory is None:
        optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=1e-2)
    else:
        optimizer = optimizer_factory(groups)
    if scheduler_factory is None:
        scheduler: Any = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    else:
        scheduler = scheduler_factory(optimizer)
    config: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = "val/mae"
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        config["interval"] = "step"  # its total_steps counts optimizer steps
    return {"optimizer": optimizer, "lr_scheduler": config}


def check_optimizer(model: nn.Module) -> None:
    """Build ``model``'s optimizer and scheduler once, before a run writes anything: a value their constructors
    refuse (a negative learning rate, say) is the user's to fix (:class:`forecast.settings.ConfigError`), not an
    internal failure after the run folder exists."""
    try:
        model.configure_optimizers()  # type: ignore[operator]
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"invalid optimizer or LR scheduler setting: {first_line(exc)}; fix the "
            f"{option('model.optimizer', 'optimizer')} or {option('model.lr_scheduler', 'lr_scheduler')} value"
        ) from exc
