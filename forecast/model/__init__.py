"""The forecasting model: CNN encoder, implicit ridge postdiction, CNN decoder; metrics in dollars."""

from forecast.model.blocks import RidgePostdiction, conv_stack
from forecast.model.forecaster import Forecaster
from forecast.model.metrics import ForecastMetrics, drift_forecast, naive_forecast

__all__ = ["ForecastMetrics", "Forecaster", "RidgePostdiction", "conv_stack", "drift_forecast", "naive_forecast"]
