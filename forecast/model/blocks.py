"""Building blocks of the forecaster: 1D-CNN encoder and decoder, and the ridge "postdiction" predictor."""

from __future__ import annotations

import itertools
from typing import Literal

from torch import Tensor, nn

from forecast.nn import RidgeRegression

ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def conv_stack(
    channels: list[int], kernel_size: int, activation: str, batch_norm: bool, dropout: float
) -> nn.Sequential:
    """Conv1d layers ``channels[0] → channels[1] → ...`` with length-preserving padding.

    Every layer but the last is followed by [BatchNorm], the activation and [Dropout], so the stack ends
    in a linear map (the ridge layer and the output both want unconstrained values).
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd to keep the sequence length, got {kernel_size}")
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        layers.append(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2))
        if i < len(channels) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(c_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class RidgePostdiction(nn.Module):
    """Fit, inside the forward pass, the ridge map from ``lookback`` encoded steps to the next ``horizon``.

    In the encoded base ``z`` (B, E, L), every channel and every shift ``s = 0 .. L - lookback - horizon`` gives
    one regression row: features ``z[:, e, s : s + lookback]``, targets ``z[:, e, s + lookback : s + lookback +
    horizon]``. The fitted map is applied to the last ``lookback`` steps to predict the encoded future.

    ``pool="sample"`` fits one regression per window on its own rows (a forecast never depends on the rest of
    the batch); ``pool="batch"`` is the tutorial's single regression over all rows of the batch.

    Args:
        base_len: L, steps of the encoded base.
        horizon: H, steps to predict.
        lookback: features per row (default ``base_len - horizon``: one shift, the tutorial's layout).
        pool: ``sample`` or ``batch``.
        init_lam: initial ridge weight λ (learned, kept positive).
        fit_intercept: fit an unregularised intercept per regression.
    """

    def __init__(
        self,
        base_len: int,
        horizon: int,
        lookback: int | None = None,
        pool: Literal["sample", "batch"] = "sample",
        init_lam: float = 1.0,
        fit_intercept: bool = False,
    ) -> None:
        super().__init__()
        self.lookback = lookback or base_len - horizon
        self.horizon = horizon
        self.shifts = base_len - self.lookback - horizon + 1
        if self.lookback < 1 or self.shifts < 1:
            raise ValueError(
                f"lookback must be in 1..{base_len - horizon} (base_len - horizon) for base_len={base_len}, "
                f"horizon={horizon}; got {lookback}"
            )
        if pool not in ("sample", "batch"):
            raise ValueError(f"pool must be 'sample' or 'batch', got {pool!r}")
        self.pool = pool
        self.ridge = RidgeRegression(init_lam=init_lam, fit_intercept=fit_intercept)

    def forward(self, z: Tensor) -> Tensor:
        """Encoded base ``(B, E, L)`` → encoded forecast ``(B, E, H)``."""
        b, e, _ = z.shape
        k, h = self.lookback, self.horizon
        windows = z.unfold(-1, k + h, 1)  # (B, E, shifts, k + h): every shift of (features, targets)
        x_fit = windows[..., :k].reshape(b, e * self.shifts, k)  # (B, n, k), n = E * shifts
        y_fit = windows[..., k:].reshape(b, e * self.shifts, h)  # (B, n, H)
        x_query = z[..., -k:]  # (B, E, k)
        if self.pool == "batch":
            x_fit = x_fit.reshape(1, b * e * self.shifts, k)
            y_fit = y_fit.reshape(1, b * e * self.shifts, h)
            return self.ridge(x_fit, y_fit, x_query.reshape(1, b * e, k)).reshape(b, e, h)
        return self.ridge(x_fit, y_fit, x_query)

    @property
    def lam(self) -> Tensor:
        return self.ridge.lam
