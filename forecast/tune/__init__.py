"""Hyperparameter search: Optuna trials of fit settings, each scored on validation years only; :func:`run` from
Python, ``python -m forecast tune`` from the command line."""

from forecast.tune.search import TuneResult, run

__all__ = ["TuneResult", "run"]
