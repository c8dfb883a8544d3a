"""Quantile forecasts: levels, non-crossing outputs, the pinball loss, and interval metrics (torchmetrics)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric


def check_levels(levels: list[float]) -> list[float]:
    """Sorted, distinct levels in (0, 1) that include 0.5 (the median is the point forecast)."""
    levels = [float(q) for q in levels]
    if not levels or any(not 0 < q < 1 for q in levels) or levels != sorted(set(levels)) or 0.5 not in levels:
        raise ValueError(f"quantiles must be increasing levels in (0, 1) that include 0.5, got {levels}")
    return levels


def level_name(level: float) -> str:
    """The column and metric name of a level: ``q`` + the level as configured (``q0.1``, ``q0.05``)."""
    return f"q{level:g}"


def central_intervals(levels: list[float]) -> list[tuple[int, int, int]]:
    """``(lower index, upper index, nominal coverage in %)`` of each central interval: pairs (τ, 1 − τ)."""
    index = {round(q, 12): i for i, q in enumerate(levels)}
    pairs = []
    for i, q in enumerate(levels):
        upper = index.get(round(1 - q, 12))
        if q < 0.5 and upper is not None:
            pairs.append((i, upper, round(100 * (1 - 2 * q))))
    return pairs


def interval_quantiles(median: Tensor, raw: Tensor, median_index: int) -> Tensor:
    """Non-crossing quantiles ``(..., Q, H)`` from the median ``(..., 1, H)`` and unconstrained outputs ``raw
    (..., Q − 1, H)`` for the other levels: each level above the median is the one below plus a softplus step,
    each level below it the one above minus one (:func:`quantiles_from_steps`)."""
    return quantiles_from_steps(median, F.softplus(raw), median_index)


def quantiles_from_steps(median: Tensor, steps: Tensor, median_index: int) -> Tensor:
    """Quantiles ``(..., Q, H)`` from the median ``(..., 1, H)`` and positive ``steps`` ``(..., Q − 1, H)``: those
    below the median (levels in order) lead down from it, those above lead up, so no two levels cross.

    The steps are added to a detached copy of the median, so the other levels' losses never move the median:
    its gradient comes from its own loss alone.
    """
    anchor = median.detach()
    below = anchor - torch.cumsum(steps[..., :median_index, :].flip(-2), dim=-2).flip(-2)
    above = anchor + torch.cumsum(steps[..., median_index:, :], dim=-2)
    return torch.cat([below, median, above], dim=-2)


class VolatilityPrior(nn.Module):
    """The other levels as a learned correction to a volatility model's quantiles, in the model's normalised units.

    The prior is the random walk whose daily changes have the base's own volatility: level τ at step s is the median
    plus ``z_τ σ √s``, σ the standard deviation of the base's daily changes of the target channel (normalised: a
    window divided by its own std has σ of its own, comparable across tickers), ``z_τ`` the normal quantile. The
    network scales each step between neighbouring levels by ``exp(g)``: ``g`` ``(Q − 1, H)`` per window, read by a
    1 × 1 convolution from the point network's encoded forecast (detached: the median trains as the point model
    does) and zero at the start, so training starts from the prior itself; a scale per level gives skew. Costs one
    small convolution, not a second network.

    Args:
        levels: the quantile levels (with 0.5).
        channels: E, the encoded channels of one member.
        members: K, the ensemble members (each its own correction).
        target_channel: the input channel of the target (Close).
    """

    def __init__(self, levels: list[float], channels: int, members: int, target_channel: int) -> None:
        super().__init__()
        self.median_index, self.members, self.target_channel = levels.index(0.5), members, target_channel
        z = torch.special.ndtri(torch.tensor(levels, dtype=torch.float64))
        below, above = z[: self.median_index + 1].diff(), z[self.median_index :].diff()  # gaps outward, each > 0
        self.register_buffer("gaps", torch.cat([below, above]).float(), persistent=False)  # (Q − 1,)
        self.scale = nn.Conv1d(members * channels, members * (len(levels) - 1), 1, groups=members)
        nn.init.zeros_(self.scale.weight)
        nn.init.zeros_(self.scale.bias)

    def forward(self, median: Tensor, encoded: Tensor, x: Tensor) -> Tensor:
        """``median`` ``(B, K, 1, H)``, the encoded forecast ``(B, K·E, H)`` and the input ``(B, C, L)`` → quantiles
        ``(B, K, Q, H)``."""
        b, _, _, h = median.shape
        c = self.target_channel
        changes = x[:, c, 1:] - x[:, c, :-1]  # (B, L − 1)
        # one change (a base of 2 days) has no standard deviation: its own size is the estimate then
        sigma = changes.std(dim=-1) if changes.shape[-1] > 1 else changes[:, 0].abs()
        sigma = sigma.clamp_min(1e-6)  # (B,): a flat base still has a width
        root = torch.arange(1, h + 1, device=x.device, dtype=x.dtype).sqrt()  # (H,)
        log_scale = self.scale(encoded.detach()).reshape(b, self.members, -1, h)  # (B, K, Q − 1, H)
        steps = self.gaps[:, None] * sigma[:, None, None, None] * root * torch.exp(log_scale)
        return quantiles_from_steps(median, steps, self.median_index)


def pinball(prediction: Tensor, target: Tensor, levels: Tensor) -> Tensor:
    """Pinball loss of each quantile forecast, elementwise: ``prediction (..., Q, H)``, ``target (..., 1, H)``,
    ``levels (Q,)`` → ``(..., Q, H)``; ``max(τ·e, (τ − 1)·e)`` with ``e = target − prediction``."""
    error = target - prediction
    tau = levels.to(prediction.dtype)[:, None]
    return torch.maximum(tau * error, (tau - 1) * error)


class IntervalMetrics(Metric):
    """Pinball loss per level (dollars), scaled by the naive-quantile baseline's, and the coverage and mean
    width (dollars) of each central interval, overall and per horizon step.

    ``update(quantiles (B, Q, H), target (B, H), naive (B, Q, H) or None)``, all dollars. ``compute()`` →
    ``pinball (Q,)``, ``naive_pinball (Q,)``, ``scaled_pinball ()`` (mean over levels of the model's over the
    baseline's), ``coverage (I,)``, ``width (I,)``, ``coverage_step (I, H)``, ``width_step (I, H)``; I = the
    central intervals of :func:`central_intervals`. Sums are float64 and synchronised across processes.
    """

    full_state_update = False

    def __init__(self, levels: list[float], horizon: int) -> None:
        super().__init__()
        self.levels = check_levels(levels)
        self.register_buffer("level_values", torch.tensor(self.levels, dtype=torch.float64), persistent=False)
        self.intervals = central_intervals(self.levels)
        q, i = len(self.levels), len(self.intervals)
        for name, shape in (
            ("pinball_sum", (q,)),
            ("naive_pinball_sum", (q,)),
            ("covered", (i, horizon)),
            ("width_sum", (i, horizon)),
        ):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("windows", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("naive_windows", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, quantiles: Tensor, target: Tensor, naive: Tensor | None = None) -> None:
        quantiles, target = quantiles.double(), target.double()[:, None, :]
        levels = self.level_values
        self.pinball_sum += pinball(quantiles, target, levels).mean(dim=-1).sum(dim=0)
        self.windows += quantiles.shape[0]
        if naive is not None:
            self.naive_pinball_sum += pinball(naive.double(), target, levels).mean(dim=-1).sum(dim=0)
            self.naive_windows += quantiles.shape[0]
        for k, (lo, hi, _) in enumerate(self.intervals):
            lower, upper, truth = quantiles[:, lo], quantiles[:, hi], target[:, 0]
            self.covered[k] += ((lower <= truth) & (truth <= upper)).double().sum(dim=0)
            self.width_sum[k] += (upper - lower).sum(dim=0)

    def named(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """The scalars of a :meth:`summary` by name: ``pinball_q0.1`` …, ``coverage_80``, ``width_80`` …, and
        ``scaled_pinball`` when the baseline was given (it is NaN otherwise: decided on the synchronised values,
        so every process logs the same names)."""
        named = {f"pinball_{level_name(q)}": v for q, v in zip(self.levels, values["pinball"], strict=True)}
        if not torch.isnan(values["scaled_pinball"]):
            named["scaled_pinball"] = values["scaled_pinball"]
        for k, (_, _, nominal) in enumerate(self.intervals):
            named[f"coverage_{nominal}"] = values["coverage"][k]
            named[f"width_{nominal}"] = values["width"][k]
        return named

    def summary(self) -> dict[str, Tensor]:
        """:meth:`compute` with its documented shapes (torchmetrics squeezes one-element results to scalars)."""
        values = self.compute()
        q, i, h = len(self.levels), len(self.intervals), self.covered.shape[-1]
        shapes = {"pinball": (q,), "naive_pinball": (q,), "scaled_pinball": (), "coverage": (i,), "width": (i,)}
        shapes |= {"coverage_step": (i, h), "width_step": (i, h)}
        return {key: values[key].reshape(shape) for key, shape in shapes.items()}

    def compute(self) -> dict[str, Tensor]:
        windows = self.windows.clamp_min(1)
        pinball_mean = self.pinball_sum / windows
        naive_mean = self.naive_pinball_sum / self.naive_windows.clamp_min(1)
        return {
            "pinball": pinball_mean,
            "naive_pinball": naive_mean,
            "scaled_pinball": pinball_mean.mean() / naive_mean.mean()
            if self.naive_windows > 0
            else torch.tensor(float("nan"), dtype=torch.float64),
            "coverage": self.covered.mean(dim=-1) / windows,
            "width": self.width_sum.mean(dim=-1) / windows,
            "coverage_step": self.covered / windows,
            "width_step": self.width_sum / windows,
        }
