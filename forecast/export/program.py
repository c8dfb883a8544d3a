"""The exported program: prices in dollars in, forecasts in dollars out — the per-window normalisation of
:mod:`forecast.data.normalise`, the network, and the inverse map, as one module with nothing but tensor arithmetic
(no host sync, no Python data), so that ``torch.export`` and ONNX capture all of it."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from forecast.data.normalise import denormalise, normalise_window
from forecast.errors import UserError
from forecast.model import Forecaster
from forecast.nn import RidgeRegression

UNITS = {
    "Volume": "shares (raw; log1p inside)",
    "Market": "the equal-weighted index of the universe (forecast.data.panel.market_level; any base)",
}


class NotExportableError(UserError):
    """A model whose forecasts cannot be one program of its own window's prices."""


class PriceForecaster(nn.Module):
    """Raw prices of each window's base → its forecasts in dollars.

    Input: ``closes`` ``(B, base_len)`` float32 dollars, oldest first, for a model of ``[Close]`` alone; else
    ``prices`` ``(B, C, base_len)``, the channels in the checkpoint's order, each in its file's units (``Volume`` as
    shares: the program takes its ``log1p`` as the reader does; ``Market`` as :func:`forecast.data.panel.market_level`
    computes it over the universe, an index of any base: the window's normalisation removes its level).
    Output: ``(B, horizon)`` float32 dollars for a point model; ``(B, horizon, Q)`` (the quantile levels, ascending)
    for a quantile model. Statistics and the inverse map run in float64, as the DataModule's do.
    """

    def __init__(self, model: Forecaster, channels: list[str], normalisation: str, unrolled: bool = False) -> None:
        super().__init__()
        if model.hparams.pool != "sample":
            raise NotExportableError(
                f"a model trained with pool: {model.hparams.pool} cannot be exported: its regression pools the windows "
                "of a batch, so a window's forecast depends on its batch mates; train with pool: sample"
            )
        if "Market" in channels and normalisation == "none":
            raise NotExportableError(
                "a model of the Market channel with normalisation none reads the index's level, which depends on the "
                "first day and the tickers of its training file: export and serve need a normalisation that removes "
                "the level (last_std, zscore, last or log)"
            )
        if model.adjustment.anchor != "last" and not bool(torch.isfinite(model.adjustment.drift)):
            raise NotExportableError("this anchored model has no drift (it was never fitted): fit it first")
        self.network = copy.deepcopy(model).eval()
        self.network.compile_network = False  # the exporter traces the eager network
        if unrolled:  # ONNX has no Cholesky operator: the factorisation written out over the system's static size
            for module in self.network.modules():
                if isinstance(module, RidgeRegression):
                    module.factorisation = "unrolled"
        self.single = channels == ["Close"]
        self.close = channels.index("Close")
        self.volume = channels.index("Volume") if "Volume" in channels else -1
        self.normalisation = normalisation
        self.point = model.quantile_levels is None
        self.eval()

    @classmethod
    def of(cls, loaded: Any, unrolled: bool = False) -> PriceForecaster:
        """The program of a loaded checkpoint (:func:`forecast.load`), with its data settings."""
        data = loaded.settings["data"]
        return cls(loaded.model, list(data["channels"]), str(data["normalisation"]), unrolled)

    def forward(self, prices: Tensor) -> Tensor:
        base = prices.double()[:, None, :] if self.single else prices.double()  # (B, C, L)
        if self.volume >= 0:
            base = torch.cat([base[:, : self.volume], base[:, self.volume : self.volume + 1].log1p(),
                              base[:, self.volume + 1 :]], dim=1)  # fmt: skip
        x, loc, scale = normalise_window(base, self.normalisation, self.close)  # as the DataModule's batches
        close, method = base[:, self.close], self.normalisation
        window = {"x": x, "base_close": close, "loc": loc, "scale": scale, "normalisation": method}
        prediction = self.network.adjustment(self.network(x), window)  # the anchor's offset, as the model adds it
        dollars = denormalise(prediction.double(), loc, scale, method)  # (B, Q, H)
        return dollars[:, 0].float() if self.point else dollars.transpose(1, 2).float()  # (B, H) or (B, H, Q)


def input_spec(model: Forecaster, data: dict[str, Any]) -> dict[str, Any]:
    """What the exported program takes and gives, written into the file's metadata."""
    channels, length, horizon = list(data["channels"]), int(data["base_len"]), int(data["horizon"])
    levels = model.quantile_levels
    single = channels == ["Close"]
    return {
        "format": "forecast-export/1",
        "input": {
            "name": "closes" if single else "prices",
            "shape": ["batch", length] if single else ["batch", len(channels), length],
            "dtype": "float32",
            "channels": channels,
            "order": "oldest first: one window's last base_len trading days a row",
            "units": {c: UNITS.get(c, "dollars") for c in channels},
        },
        "output": {
            "name": "forecasts",
            "shape": ["batch", horizon] if levels is None else ["batch", horizon, len(levels)],
            "dtype": "float32",
            "units": "dollars",
            "steps": "the next horizon trading days after the base's last day",
            "quantile_levels": levels,
        },
        "base_len": length,
        "horizon": horizon,
        "normalisation": data["normalisation"],
        "calendar": data.get("calendar"),
        "torch": torch.__version__,
    }
