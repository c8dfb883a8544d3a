"""The differentiable optimisation layer: batched ridge regression with implicit gradients. Knows nothing about
stocks or Lightning."""

from forecast.nn.ridge import RidgeRegression, ridge_solve_normal

__all__ = ["RidgeRegression", "ridge_solve_normal"]
