"""Forecasts outside Python and Lightning: a checkpoint exported as one program, prices in, dollars out."""

from forecast.export.program import NotExportableError, PriceForecaster
from forecast.export.writer import export_checkpoint, run_onnx

__all__ = ["NotExportableError", "PriceForecaster", "export_checkpoint", "run_onnx"]
