"""Split-conformal calibration of quantile forecasts: a shift per level and horizon step, learned on windows that
neither trained the model nor chose its checkpoint, so that a level-τ forecast is exceeded a fraction 1 − τ of the
time out of sample (conformalized quantile regression, each end on its own: Romano, Patterson & Candès 2019).

For level τ and step h, with calibration residuals ``e_i = y_i − q_i`` (i = 1 .. n, any units: the model calibrates
in its normalised units, comparable across tickers when the normalisation divides each window by its own scale,
as every method but ``none`` does; with ``none`` they are dollars, pooled over tickers of every price), the shift
is an order statistic of the residuals:

    c = e_(k),   k = ⌈(n + 1) τ⌉  for τ > 0.5  (upper ends: P(y ≤ q + c) ≥ τ),
                 k = ⌊(n + 1) τ⌋  for τ < 0.5  (lower ends: P(y < q + c) ≤ τ),

and 0 for the median (the point forecast stays as it is). For exchangeable windows the central interval (τ, 1 − τ)
then covers a new target with probability at least 1 − 2τ, and at most 1 − 2τ + 2 / (n + 1) (ties aside). When
``k`` falls outside 1 .. n there are too few windows for that level, and :func:`conformal_shifts` refuses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


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
    levels = list((quantiles + shifts).unbind(-2))  # a loop over the static Q: elementwise, so ONNX exports it
    for j in range(median_index + 1, len(levels)):
        levels[j] = torch.maximum(levels[j], levels[j - 1])
    for j in range(median_index - 1, -1, -1):
        levels[j] = torch.minimum(levels[j], levels[j + 1])
    return torch.stack(levels, dim=-2)


UNCALIBRATED = (
    "this model's intervals are not calibrated (its checkpoint predates calibration, or it was trained without "
    "--data.calibration_fraction): their coverage can differ from the nominal levels"
)


class IntervalCalibration(nn.Module):
    """A quantile model's conformal shifts ``(Q, H)`` (normalised units) and whether they were learned, kept in its
    checkpoint (``calibration.shifts``, ``calibration.calibrated``) and applied by its forward pass, so that
    ``predict``, the Python API, the exported program and the service all forecast calibrated intervals.

    Each validation epoch the windows of the calibration split (``--data.calibration_fraction``: the validation
    year's last days, which never choose the checkpoint) are collected with their targets, and the shifts are
    refitted from the epoch's own weights; each training epoch starts uncalibrated (the model resets it), so a
    checkpoint saved before its epoch's validation — or after a warm start without a calibration split — says
    uncalibrated rather than keep shifts of other weights.
    """

    def __init__(self, levels: list[float], horizon: int) -> None:
        super().__init__()
        self.levels, self.median_index = levels, levels.index(0.5)
        self.register_buffer("shifts", torch.zeros(len(levels), horizon))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self._windows: list[tuple[Tensor, Tensor]] = []

    def forward(self, quantiles: Tensor) -> Tensor:
        """Calibrated quantiles ``(..., Q, H)`` (unchanged while uncalibrated: the shifts are zero)."""
        return apply_shifts(quantiles, self.shifts.to(quantiles.dtype), self.median_index)

    def collect(self, quantiles: Tensor, target: Tensor) -> None:
        """Keep a batch of uncalibrated forecasts ``(B, Q, H)`` and targets ``(B, H)``, normalised units."""
        self._windows.append((quantiles.detach().float(), target.detach().float()))

    def forget(self) -> None:
        """Drop the windows collected (a sanity check's: they are not an epoch's)."""
        self._windows = []

    def reset(self) -> None:
        """Uncalibrated again (zero shifts): the weights are about to change, and these shifts were theirs."""
        self._windows = []
        self.shifts.zero_()
        self.calibrated.fill_(False)

    def fit(self, gather: Callable[[Tensor], Tensor]) -> None:
        """Refit the shifts from the windows collected over every process (``gather``: the LightningModule's
        ``all_gather``; every process calls it, with or without windows) and forget them. Nothing when no process
        collected any (no calibration split); too few windows leave the intervals uncalibrated, with a warning."""
        windows, self._windows = self._windows, []
        q, h = self.shifts.shape
        parts = [torch.cat([quantiles.flatten(1), target], dim=1) for quantiles, target in windows]
        rows = torch.cat(parts) if parts else self.shifts.new_zeros(0, q * h + h)  # (n, Q·H + H): one to gather
        count = gather(torch.tensor(len(rows), device=rows.device)).reshape(-1)
        if int(count.sum()) == 0:
            return
        padded = torch.full((int(count.max()), rows.shape[1]), float("nan"), device=rows.device)
        padded[: len(rows)] = rows
        everything = gather(padded).reshape(-1, rows.shape[1])
        everything = everything[~everything.isnan().any(dim=1)]
        try:
            shifts = conformal_shifts(everything[:, : q * h].reshape(-1, q, h), everything[:, q * h :], self.levels)
        except ValueError as exc:  # too few calibration windows for a level
            log.warning("%s: the intervals stay uncalibrated; raise --data.calibration_fraction", exc)
            self.reset()
            return
        self.shifts.copy_(shifts)
        self.calibrated.fill_(True)
