"""The GARCH(1,1) interval baseline: per ticker, a GARCH(1,1) with a constant mean fitted to its daily log returns
through the fold's validation end (year Y − 1), then each test window's quantiles from its variance forecast.

For a ticker with returns ``r_i`` (percent), mean ``μ`` and parameters ``ω, α, β`` (fitted by the ``arch`` package,
an optional extra: ``pip install 'forecast[garch]'``), the filter ``σ²_i = ω + α (r_{i-1} − μ)² + β σ²_{i-1}`` runs
over all its days with the parameters fixed (day i's variance uses returns before i only). At an origin whose last
return is ``r_i``, the variance of the return k days ahead is

    σ²_{i+1} = ω + α (r_i − μ)² + β σ²_i,     σ²_{i+k} = ω + (α + β) σ²_{i+k−1}   (k ≥ 2),

and the forecast of step s at level τ is ``c · exp(μ s + z_τ √(Σ_{k≤s} σ²_{i+k}))`` (``c`` the last close, returns
back in fractions, ``z_τ`` the standard normal quantile): the vol-scaled random walk with a GARCH σ in place of the
base's own.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.stats import norm

from forecast.data.panel import Panel

SPEC = {"mean": "Constant", "vol": "GARCH", "p": 1, "q": 1, "dist": "normal", "rescale": False}
"""The model of ``arch.arch_model``: a constant mean, GARCH(1,1), normal innovations, returns as given."""

MIN_RETURNS = 250
"""The fewest daily returns through the validation end a ticker's GARCH fit needs (about a year)."""


def garch_missing() -> str | None:
    """Why the GARCH baseline cannot run here (the ``arch`` package is missing), or None."""
    try:
        import arch  # noqa: F401
    except ImportError:
        return "the arch package is not installed (pip install 'forecast[garch]')"
    return None


def variance_paths(params: np.ndarray, residual: np.ndarray, sigma2: np.ndarray, horizon: int) -> np.ndarray:
    """Variances of the next ``horizon`` returns ``(N, H)`` after each origin, from its last ``residual`` ``r_i − μ``
    ``(N,)`` and filtered variance ``σ²_i`` ``(N,)`` (the same units), for ``params`` ``(μ, ω, α, β)``."""
    _, omega, alpha, beta = params
    paths = np.empty((len(residual), horizon))
    paths[:, 0] = omega + alpha * residual**2 + beta * sigma2
    for k in range(1, horizon):
        paths[:, k] = omega + (alpha + beta) * paths[:, k - 1]
    return paths


def _ticker_variances(returns: np.ndarray, fit_returns: int, at: np.ndarray, horizon: int) -> tuple[float, np.ndarray]:
    """Fit on the first ``fit_returns`` of a ticker's daily log ``returns`` (fractions), filter them all, and give the
    fitted daily mean and the variance paths ``(len(at), H)`` (fractions²) after return indices ``at``."""
    from arch import arch_model

    percent = 100.0 * returns  # arch's optimiser works best with returns of order 1
    model = arch_model(percent[:fit_returns], **SPEC)
    with warnings.catch_warnings():  # arch warns of a fit that did not converge: checked below, in one message
        warnings.simplefilter("ignore")
        result = model.fit(disp="off")
    params = result.params.to_numpy()
    if result.convergence_flag != 0 or not np.isfinite(params).all():
        raise ValueError(f"the GARCH(1,1) fit did not converge ({result.optimization_result.message})")
    fixed = arch_model(percent, **SPEC).fix(params)  # the same model over every day, its parameters fixed
    sigma2 = np.asarray(fixed.conditional_volatility) ** 2
    paths = variance_paths(params, percent[at] - params[0], sigma2[at], horizon)
    return params[0] / 100.0, paths / 1e4


def garch_forecast(
    panel: Panel, origins: np.ndarray, last_fit_day: str, levels: list[float], horizon: int
) -> tuple[torch.Tensor | None, str | None]:
    """The GARCH(1,1) quantile forecasts ``(N, Q, H)`` dollars of the windows whose last base day is panel row
    ``origins`` ``(N,)``, each ticker fitted on its returns dated on or before ``last_fit_day``; or None and why not
    (``arch`` missing, a ticker with fewer than :data:`MIN_RETURNS` returns to fit, a failed fit)."""
    missing = garch_missing()
    if missing is not None:
        return None, missing
    close, z = panel.close.numpy(), norm.ppf(levels)  # (Q,)
    out = np.full((len(origins), len(levels), horizon), np.nan)
    owner = panel.ticker_of(origins)
    steps = np.arange(1, horizon + 1)
    for k in np.unique(owner):
        lo, hi = panel.offsets[k], panel.offsets[k + 1]
        returns = np.log(close[lo + 1 : hi] / close[lo : hi - 1])  # return i: from row lo + i to lo + i + 1
        fit_returns = int((panel.dates[lo + 1 : hi] <= np.datetime64(last_fit_day, "D")).sum())
        name = panel.names[k]
        if fit_returns < MIN_RETURNS:
            return (
                None,
                f"{name} has {fit_returns} daily returns through {last_fit_day}, a GARCH fit needs {MIN_RETURNS}",
            )
        mine = np.flatnonzero(owner == k)
        if (origins[mine] <= lo).any():
            return None, f"{name}: a window's last base day has no return before it"
        try:
            mu, paths = _ticker_variances(returns, fit_returns, origins[mine] - lo - 1, horizon)
        except (ValueError, np.linalg.LinAlgError) as exc:
            return None, f"{name}: {exc}"
        spread = np.sqrt(np.cumsum(paths, axis=1))  # (n, H): the s-step log return's std
        exponent = mu * steps + z[:, None, None] * spread[None]  # (Q, n, H)
        out[mine] = (close[origins[mine]][None, :, None] * np.exp(exponent)).transpose(1, 0, 2)
    return torch.from_numpy(out), None
