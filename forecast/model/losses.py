"""The training losses, in the windows' normalised units (or the protocol's relMAE in dollars)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.nn import functional as F

from forecast.data.normalise import denormalise
from forecast.model.quantiles import pinball

LOSSES = ("mse", "mae", "huber", "rel_mae")


def forecast_loss(
    prediction: Tensor, batch: dict[str, Any], loss: str, levels: Tensor | None, huber_delta: float = 1.0
) -> Tensor:
    """Loss of normalised forecasts ``prediction (B, K, Q, H)`` (K forecasts of each window) against the batch's
    targets ``y (B, 1, H)``: the mean over the K of each one's loss, a scalar.

    With quantile ``levels`` ``(Q,)`` (a tensor on the prediction's device: made once by the caller, not per batch
    from a Python list, which would copy to the device and block every step): twice the pinball loss averaged over
    levels (for 0.5 alone exactly the MAE).
    ``rel_mae``: the batch's MAE in dollars over that of the naive (last value) forecast, the protocol's own metric.
    """
    if levels is not None:
        return 2 * pinball(prediction, batch["y"][:, None], levels).mean()
    prediction = prediction[:, :, 0]  # (B, K, H)
    target = batch["y"].expand_as(prediction)
    if loss == "rel_mae":
        # in dollars, float32; the denominator does not depend on the model, it only sets the loss's scale
        dollars = denormalise(prediction, batch["loc"].float(), batch["scale"].float(), batch["normalisation"])
        truth = batch["target"].float()[:, None, :]  # (B, 1, H)
        naive = batch["base_close"][:, -1:].float()[:, None, :]  # (B, 1, 1)
        naive_error = (naive - truth).abs().sum().clamp_min(1e-12) * prediction.shape[1]
        return (dollars - truth).abs().sum() / naive_error
    if loss == "mae":
        return F.l1_loss(prediction, target)
    if loss == "huber":
        return F.huber_loss(prediction, target, delta=huber_delta)
    return F.mse_loss(prediction, target)
