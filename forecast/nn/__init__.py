"""Differentiable optimisation layers. Knows nothing about stocks or Lightning."""

from forecast.nn.argmin import ConvergenceWarning, SolverOptions, argmin, batched_cg
from forecast.nn.ridge import RidgeRegression, ridge_solve, ridge_solve_normal

__all__ = [
    "ConvergenceWarning",
    "RidgeRegression",
    "SolverOptions",
    "argmin",
    "batched_cg",
    "ridge_solve",
    "ridge_solve_normal",
]
