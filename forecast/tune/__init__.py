"""Hyperparameter search: Optuna trials of fit settings, each scored on validation years only."""
