"""Per-window normalisation computed from the base only, and its exact inverse.

Every method maps a value ``v`` of a channel to ``(f(v) - loc) / scale`` where ``loc`` and ``scale`` come from
that window's base and ``f`` is the identity, or ``log`` for the ``log`` method. Nothing from the target
days enters ``loc`` or ``scale``.
"""

from __future__ import annotations

import torch
from torch import Tensor

METHODS = ("none", "last", "zscore", "last_std", "log")
_MIN_POSITIVE = 1e-12


def window_stats(base: Tensor, method: str) -> tuple[Tensor, Tensor]:
    """``(loc, scale)`` of each window and channel, each ``(B, C, 1)``, from the base ``(B, C, L)``."""
    last = base[..., -1:]
    if method == "none":
        return torch.zeros_like(last), torch.ones_like(last)
    if method == "last":
        return torch.zeros_like(last), last.abs().clamp_min(_MIN_POSITIVE)
    if method == "log":
        return last.clamp_min(_MIN_POSITIVE).log(), torch.ones_like(last)
    # a flat base has std 0: floor the scale relative to the level so the division stays finite
    std = base.std(dim=-1, keepdim=True, unbiased=False)
    floor = 1e-6 * base.abs().mean(dim=-1, keepdim=True) + _MIN_POSITIVE
    scale = torch.maximum(std, floor)
    if method == "zscore":
        return base.mean(dim=-1, keepdim=True), scale
    if method == "last_std":
        return last, scale
    raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(METHODS)}")


def normalise(values: Tensor, loc: Tensor, scale: Tensor, method: str) -> Tensor:
    """Map dollar-scale ``values`` (any shape broadcasting with ``loc``/``scale``) to the normalised scale."""
    if method == "log":
        values = values.clamp_min(_MIN_POSITIVE).log()
    return (values - loc) / scale


def normalise_window(base: Tensor, method: str, target: int) -> tuple[Tensor, Tensor, Tensor]:
    """A window batch as the network reads it: ``x`` ``(B, C, L)`` float32, each channel normalised by its own
    base's statistics, and the ``target`` channel's ``(loc, scale)``, each ``(B, 1, 1)`` in ``base``'s dtype, to
    map forecasts back with :func:`denormalise`. The DataModule's batches and the exported program both use it."""
    loc, scale = window_stats(base, method)  # (B, C, 1) each
    x = normalise(base, loc, scale, method).float()
    return x, loc[:, target : target + 1], scale[:, target : target + 1]


def denormalise(values: Tensor, loc: Tensor, scale: Tensor, method: str) -> Tensor:
    """Exact inverse of :func:`normalise`: normalised ``values`` back to dollars."""
    out = values * scale + loc
    return out.exp() if method == "log" else out
