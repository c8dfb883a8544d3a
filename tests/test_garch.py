"""The GARCH(1,1) interval baseline (forecast/backtest/garch.py): its variance paths against the arch package's own
forecast, the quantiles against the formula on a hand case, and the reasons it is skipped."""

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from forecast.backtest.garch import garch_forecast, variance_paths
from forecast.data.panel import Panel
from tests.helpers import require

H = 4


def _panel(n_days=(700, 650), seed=0) -> Panel:
    """Two tickers of GARCH-like prices (volatility clusters), business days from 2010."""
    rng = np.random.default_rng(seed)
    names, closes, dates, offsets = [], [], [], [0]
    for k, n in enumerate(n_days):
        sigma2, returns = 1e-4, np.empty(n - 1)
        for i in range(n - 1):
            returns[i] = np.sqrt(sigma2) * rng.standard_normal()
            sigma2 = 2e-6 + 0.1 * returns[i] ** 2 + 0.87 * sigma2
        closes.append(50.0 * (k + 1) * np.exp(np.concatenate([[0.0], np.cumsum(returns)])))
        dates.append(pd.bdate_range("2010-01-04", periods=n).to_numpy().astype("datetime64[D]"))
        names.append(f"T{k}")
        offsets.append(offsets[-1] + n)
    close = torch.from_numpy(np.concatenate(closes))
    return Panel(names, np.array(offsets), close[:, None], close, np.concatenate(dates), ["Close"])


def test_variance_paths_on_a_hand_case():
    # μ 0.1, ω 0.2, α 0.1, β 0.8; residual 2, σ² 1.5: σ²₁ = 0.2 + 0.4 + 1.2 = 1.8, σ²₂ = 0.2 + 0.9 · 1.8 = 1.82
    paths = variance_paths(np.array([0.1, 0.2, 0.1, 0.8]), np.array([2.0]), np.array([1.5]), 3)
    np.testing.assert_allclose(paths, [[1.8, 1.82, 1.838]], rtol=1e-12)


def test_quantiles_equal_arch_own_forecast():
    arch = require("arch", "garch")
    panel = _panel()
    levels = [0.1, 0.5, 0.9]
    last_fit_day = "2011-12-30"
    lo, hi = panel.offsets[0], panel.offsets[1]
    origins = np.array([lo + 600, lo + 601, lo + 690, panel.offsets[1] + 640])  # rows: last base days
    forecast, why = garch_forecast(panel, origins, last_fit_day, levels, H)
    assert why is None and forecast.shape == (4, 3, H)
    # ticker 0 again, by arch alone: fit through last_fit_day, forecast with the parameters fixed
    close = panel.close.numpy()
    returns = 100 * np.log(close[lo + 1 : hi] / close[lo : hi - 1])
    fit_n = int((panel.dates[lo + 1 : hi] <= np.datetime64(last_fit_day)).sum())
    spec = {"mean": "Constant", "vol": "GARCH", "p": 1, "q": 1, "dist": "normal", "rescale": False}
    params = arch.arch_model(returns[:fit_n], **spec).fit(disp="off").params
    for j, origin in enumerate(origins[:3]):
        fixed = arch.arch_model(returns, **spec).fix(params.to_numpy())
        result = fixed.forecast(horizon=H, start=int(origin - lo - 1), reindex=False)
        variance = result.variance.to_numpy()[0] / 1e4  # the first row: the origin's own forecast
        mean = result.mean.to_numpy()[0] / 100
        expected = close[origin] * np.exp(np.cumsum(mean) + norm.ppf(levels)[:, None] * np.sqrt(np.cumsum(variance)))
        np.testing.assert_allclose(forecast[j].numpy(), expected, rtol=1e-9)
    assert torch.isfinite(forecast[3]).all() and (forecast[3, 0] < forecast[3, 2]).all()


def test_skipped_with_a_reason():
    require("arch", "garch")
    panel = _panel()
    forecast, why = garch_forecast(panel, np.array([5]), "2010-03-31", [0.1, 0.5, 0.9], H)
    assert forecast is None and why == "T0 has 62 daily returns through 2010-03-31, a GARCH fit needs 250"


def test_skipped_without_arch(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "arch", None)  # import arch now raises ImportError
    forecast, why = garch_forecast(_panel(), np.array([600]), "2011-12-30", [0.1, 0.5, 0.9], H)
    assert forecast is None and why == "the arch package is not installed (pip install 'forecast[garch]')"
