"""Split-conformal calibration of quantile forecasts: a shift per level and horizon step, learned on windows that
neither trained the model nor chose its checkpoint, so that a level-τ forecast is exceeded a fraction 1 − τ of the
time out of sample (conformalized quantile regression, each end on its own: Romano, Patterson & Candès 2019).

For level τ and step h, with calibration residuals ``e_i = y_i − q_i`` (i = 1 .. n, any units: the model calibrates
in its normalised units, which are comparable across tickers), the shift is an order statistic of the residuals:

    c = e_(k),   k = ⌈(n + 1) τ⌉  for τ > 0.5  (upper ends: P(y ≤ q + c) ≥ τ),
                 k = ⌊(n + 1) τ⌋  for τ < 0.5  (lower ends: P(y < q + c) ≤ τ),

and 0 for the median (the point forecast stays as it is). For exchangeable windows the central interval (τ, 1 − τ)
then covers a new target with probability at least 1 − 2τ, and at most 1 − 2τ + 2 / (n + 1) (ties aside). When
``k`` falls outside 1 .. n there are too few windows for that level, and :func:`conformal_shifts` refuses.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def conformal_shifts(quantiles: Tensor, target: Tensor, levels: list[float]) -> Tensor:
    """Each level's and step's shift ``(Q, H)`` from calibration forecasts ``quantiles`` ``(N, Q, H)`` and targets
    ``target`` ``(N, H)``, in the forecasts' units.

    Raises:
        ValueError: shapes that do not match, no windows, or too few for a level (``(n + 1) · min(τ, 1 − τ) < 1``).
    """
    n, q, h = quantiles.shape
    if target.shape != (n, h) or len(levels) != q or n == 0:
        raise ValueError(
            f"conformal calibration needs quantiles (N, {len(levels)}, H) and targets (N, H) with N > 0, got "
            f"{tuple(quantiles.shape)} and {tuple(target.shape)}"
        )
    residuals = (target[:, None, :] - quantiles).sort(dim=0).values  # (N, Q, H), ascending over the windows
    shifts = torch.zeros(q, h, dtype=quantiles.dtype, device=quantiles.device)
    for j, tau in enumerate(levels):
        if tau == 0.5:
            continue
        # (n + 1) τ in floating point (10 · 0.7 = 7.000000000000001): rounded before ⌈·⌉ and ⌊·⌋
        rank = round((n + 1) * tau, 9)
        k = math.ceil(rank) if tau > 0.5 else math.floor(rank)
        if not 1 <= k <= n:
            fewest = math.ceil(round(1 / min(tau, 1 - tau), 9)) - 1
            raise ValueError(f"conformal calibration of level {tau:g} needs at least {fewest} windows, got {n}")
        shifts[j] = residuals[k - 1, j]
    return shifts


def apply_shifts(quantiles: Tensor, shifts: Tensor, median_index: int) -> Tensor:
    """Shifted quantiles ``(..., Q, H)`` from forecasts ``(..., Q, H)`` and shifts ``(Q, H)``, kept non-crossing
    outward from the median, which never moves: each level above it is at least the one below (a running
    maximum), each level below it at most the one above (a running minimum)."""
    shifted = quantiles + shifts
    upper = torch.cummax(shifted[..., median_index:, :], dim=-2).values
    lower = torch.cummin(shifted[..., : median_index + 1, :].flip(-2), dim=-2).values.flip(-2)
    return torch.cat([lower[..., :median_index, :], upper], dim=-2)
