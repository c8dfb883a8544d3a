"""The Diebold–Mariano test against a case computed by hand, the t-test it reduces to, and a matrix form."""

import math

import numpy as np
import pytest
from scipy import stats

from forecast.backtest.dm import diebold_mariano


def test_hand_computed_case():
    # d = 1, 2, 3, 4 and h = 2: mean 2.5, deviations ±0.5, ±1.5
    # gamma0 = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; gamma1 = (0.75 - 0.25 + 0.75) / 4 = 0.3125
    # Newey-West with 1 lag (Bartlett weight 1 - 1/2): V = 1.25 + 2 * 0.5 * 0.3125 = 1.5625
    # DM = 2.5 / sqrt(1.5625 / 4) = 4; HLN factor sqrt((4 + 1 - 4 + 2 / 4) / 4) = sqrt(0.375): DM* = sqrt(6)
    result = diebold_mariano(np.array([1.0, 2.0, 3.0, 4.0]), horizon=2)
    assert result.stat == pytest.approx(math.sqrt(6), rel=1e-12)
    # Student t with 3 degrees of freedom in closed form: P(T > t) = 1/2 - (u / (1 + u^2) + atan u) / pi, u = t/sqrt3
    u = math.sqrt(6) / math.sqrt(3)
    p_by_hand = 2 * (0.5 - (u / (1 + u * u) + math.atan(u)) / math.pi)
    assert result.p == pytest.approx(p_by_hand, rel=1e-10)
    assert result.p == pytest.approx(0.0917, abs=1e-4)
    assert (result.mean, result.n) == (2.5, 4)


def test_one_step_forecasts_reduce_to_the_one_sample_t_test():
    d = np.random.default_rng(0).normal(0.1, 1.0, size=57)
    result = diebold_mariano(d, horizon=1)
    reference = stats.ttest_1samp(d, 0.0)
    assert result.stat == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-10)


@pytest.mark.parametrize("horizon", [2, 5, 10])
def test_long_run_variance_equals_the_bartlett_weighted_covariance_matrix(horizon):
    d = np.cumsum(np.random.default_rng(horizon).normal(size=80)) * 0.05 + 0.02  # autocorrelated
    n, dev = len(d), d - d.mean()
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    weights = np.where(lag < horizon, 1 - lag / horizon, 0.0)
    variance = dev @ weights @ dev / n  # the same estimator written as a quadratic form
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    expected = d.mean() / math.sqrt(variance / n) * hln
    result = diebold_mariano(d, horizon)
    assert result.stat == pytest.approx(expected, rel=1e-10)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(expected), n - 1), rel=1e-10)


def test_sign_and_degenerate_series():
    better = diebold_mariano(np.array([-1.0, -2.0, -1.5, -0.5, -1.2]), horizon=2)
    assert better.stat < 0 and better.p < 0.05  # negative: the first forecast's losses are smaller
    assert diebold_mariano(np.zeros(10), horizon=3).p == 1.0  # identical forecasts: no evidence at all
    with pytest.raises(ValueError, match="two or more finite"):
        diebold_mariano(np.array([1.0, np.nan]), horizon=1)
