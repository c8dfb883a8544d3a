"""The Diebold–Mariano test against a case computed by hand, the t-test it reduces to, a matrix form, its size
under the null in a seeded simulation, and the series it refuses."""

import math

import numpy as np
import pytest
from scipy import stats

from forecast.backtest.dm import BARTLETT, UNIFORM, diebold_mariano


def test_hand_computed_case():
    # d = 1, 2, 3, 4 and h = 2: mean 2.5, deviations ±0.5, ±1.5
    # gamma0 = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; gamma1 = (0.75 - 0.25 + 0.75) / 4 = 0.3125
    # uniform weights up to lag h - 1 = 1: V = 1.25 + 2 * 0.3125 = 1.875
    # DM = 2.5 / sqrt(1.875 / 4); HLN factor sqrt((4 + 1 - 4 + 2 / 4) / 4) = sqrt(0.375)
    # so DM*^2 = 6.25 * 4 / 1.875 * 0.375 = 5
    result = diebold_mariano(np.array([1.0, 2.0, 3.0, 4.0]), horizon=2)
    assert result.stat == pytest.approx(math.sqrt(5), rel=1e-12)
    # Student t with 3 degrees of freedom in closed form: P(T > t) = 1/2 - (u / (1 + u^2) + atan u) / pi, u = t/sqrt3
    u = math.sqrt(5) / math.sqrt(3)
    p_by_hand = 2 * (0.5 - (u / (1 + u * u) + math.atan(u)) / math.pi)
    assert result.p == pytest.approx(p_by_hand, rel=1e-10)
    assert result.p == pytest.approx(0.1114, abs=1e-4)
    assert (result.mean, result.n, result.estimator) == (2.5, 4, UNIFORM)


def test_one_step_forecasts_reduce_to_the_one_sample_t_test():
    d = np.random.default_rng(0).normal(0.1, 1.0, size=57)
    result = diebold_mariano(d, horizon=1)
    reference = stats.ttest_1samp(d, 0.0)
    assert result.stat == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-10)


@pytest.mark.parametrize("horizon", [2, 5, 10])
def test_long_run_variance_equals_the_truncated_covariance_matrix(horizon):
    d = np.cumsum(np.random.default_rng(horizon).normal(size=80)) * 0.05 + 0.02  # autocorrelated
    n, dev = len(d), d - d.mean()
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    variance = dev @ np.where(lag < horizon, 1.0, 0.0) @ dev / n  # the same estimator written as a quadratic form
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    expected = d.mean() / math.sqrt(variance / n) * hln
    result = diebold_mariano(d, horizon)
    assert result.stat == pytest.approx(expected, rel=1e-10)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(expected), n - 1), rel=1e-10)


def test_a_negative_uniform_variance_falls_back_to_bartlett_and_says_so():
    d = np.tile([1.0, -1.0], 10) + 0.1  # alternating: gamma1 = -gamma0 * 19/20, so gamma0 + 2 gamma1 < 0
    n, dev = len(d), d - d.mean()
    gamma0, gamma1 = dev @ dev / n, dev[1:] @ dev[:-1] / n
    assert gamma0 + 2 * gamma1 < 0
    bartlett = gamma0 + 2 * (1 - 1 / 2) * gamma1
    hln = math.sqrt((n + 1 - 4 + 2 / n) / n)
    result = diebold_mariano(d, horizon=2)
    assert result.estimator == BARTLETT
    assert result.stat == pytest.approx(d.mean() / math.sqrt(bartlett / n) * hln, rel=1e-10)


def test_size_under_the_null_of_an_ma9_series():
    """h = 10 forecasts from consecutive origins: a differential that is MA(9) with mean zero. A 5 % test must
    reject about 5 % of such series (Bartlett weights rejected 11 % here: their variance is about 2/3 of the truth).
    """
    rng = np.random.default_rng(20261202)
    horizon, periods, draws = 10, 1250, 2000
    shocks = rng.normal(size=(draws, periods + horizon - 1))
    series = np.stack([shocks[:, k : k + periods] for k in range(horizon)]).sum(axis=0)  # sum of 10 shocks: MA(9)
    rejected = np.mean([diebold_mariano(d, horizon).p < 0.05 for d in series])
    assert 0.04 <= rejected <= 0.07, rejected


def test_sign_and_degenerate_series():
    better = diebold_mariano(np.array([-1.0, -2.0, -1.5, -0.5, -1.2]), horizon=2)
    assert better.stat < 0 and better.p < 0.05  # negative: the first forecast's losses are smaller
    assert diebold_mariano(np.zeros(10), horizon=3).p == 1.0  # identical forecasts: no evidence at all
    with pytest.raises(ValueError, match="finite"):
        diebold_mariano(np.array([1.0, np.nan, 2.0, 3.0]), horizon=1)


@pytest.mark.parametrize("periods", [3, 9, 10, 19])
def test_too_few_origins_for_the_horizon_are_refused(periods):
    # T <= h made the HLN factor meaningless (T = 3: p = 9e-5; T = 9 or 10: p = 1); fewer than 2h is refused too
    with pytest.raises(ValueError, match="10-step forecasts needs 20 or more origin dates, got"):
        diebold_mariano(np.random.default_rng(periods).normal(size=periods), horizon=10)
    assert diebold_mariano(np.random.default_rng(0).normal(size=20), horizon=10).n == 20
