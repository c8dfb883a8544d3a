"""Lightning callbacks, each owning one output of a run: checkpoints, figures, fit summary, test report, forecasts."""

from forecast.callbacks.checkpoints import LastCheckpoint
from forecast.callbacks.figures import ForecastFigures, forecast_examples
from forecast.callbacks.fit_summary import FitSummary, checkpoint_paths
from forecast.callbacks.phases import Phases
from forecast.callbacks.prediction_writer import PREDICTION_COLUMNS, CSVPredictionWriter, prediction_frame
from forecast.callbacks.test_report import TestReport

__all__ = [
    "PREDICTION_COLUMNS",
    "CSVPredictionWriter",
    "FitSummary",
    "ForecastFigures",
    "LastCheckpoint",
    "Phases",
    "TestReport",
    "checkpoint_paths",
    "forecast_examples",
    "prediction_frame",
]
