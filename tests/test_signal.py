"""The cross-sectional signal: rank correlations against scipy, a hand-computed day of IC, hit rate and a
long-short book with its turnover and costs, a perfect and a useless forecast, and the size of the IC test."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecast.backtest.dm import diebold_mariano
from forecast.backtest.signal import (
    SignalSeries,
    book_turnover,
    combine,
    hit_rate,
    long_short_weights,
    net_return,
    rank_correlation,
    signal_series,
    signal_stats,
)


def test_rank_correlation_equals_scipy_row_by_row_with_gaps_and_ties():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 9))
    b = 0.4 * a + rng.normal(size=(40, 9))
    a[3, 2], b[4, 1] = np.nan, np.nan  # a ticker without a window that day
    a[5, :7] = np.nan  # two tickers left: no IC
    a[6] = np.round(a[6])  # ties: average ranks
    expected = []
    for x, y in zip(a, b, strict=True):
        both = np.isfinite(x) & np.isfinite(y)
        expected.append(stats.spearmanr(x[both], y[both]).statistic if both.sum() >= 3 else np.nan)
    np.testing.assert_allclose(rank_correlation(a, b), expected, rtol=1e-12, equal_nan=True)


def test_one_day_by_hand():
    # six tickers; forecast returns f and realised r (one date)
    f = np.array([[0.03, -0.01, 0.02, 0.00, -0.02, 0.01]])
    r = np.array([[0.02, -0.02, -0.01, 0.01, -0.03, 0.04]])
    # ranks f: 6 2 5 3 1 4; ranks r: 5 2 3 4 1 6; d = 1 0 2 -1 0 -2: rho = 1 - 6 * 10 / (6 * 35) = 5/7
    assert rank_correlation(f, r)[0] == pytest.approx(5 / 7, rel=1e-12)
    # means: f 0.005, r 0.001 ; sides f: + - + - - + ; r: + - - + - + : 4 of 6 agree
    assert hit_rate(f, r)[0] == pytest.approx(4 / 6)
    # k = 2: long the two highest f (tickers 0 and 2), short the two lowest (4 and 1)
    weights = long_short_weights(f)
    np.testing.assert_allclose(weights[0], [0.5, -0.5, 0.5, 0, -0.5, 0])
    # spread: (0.02 - 0.01) / 2 - (-0.03 - 0.02) / 2 = 0.03 -> 300 bp
    assert (weights * r).sum() * 1e4 == pytest.approx(300.0)


def test_series_of_windows_long_short_turnover_and_costs():
    """Two dates, four tickers: the windows' prices give the returns of the hand case."""
    last = np.full(8, 100.0)
    step_h = np.array([103.0, 99.0, 102.0, 101.0, 101.0, 102.0, 99.0, 98.0])  # forecasts at step h
    truth_h = np.array([102.0, 98.0, 99.0, 104.0, 100.0, 103.0, 97.0, 101.0])
    forecast = np.stack([100 + (step_h - 100) / 2, step_h], axis=1)  # (N, H = 2): step 1 halfway
    target = np.stack([100 + (truth_h - 100) / 2, truth_h], axis=1)
    dates = np.repeat(np.array(["2021-01-04", "2021-01-05"], dtype="datetime64[D]"), 4)
    tickers = np.tile(np.arange(4), 2)
    series = signal_series(last, forecast, target, dates, tickers)
    # k = 1 of 4: day 1 long ticker 0 (+2 %), short ticker 1 (-2 %): 400 bp; day 2 long 1 (+3 %), short 3 (+1 %): 200
    np.testing.assert_allclose(series.spread, [400.0, 200.0])
    # turnover: with h = 2 both days build a book of their own from nothing (|1| + |-1| = 2 each): each book is
    # held two days, and replaces the one formed two origins earlier
    np.testing.assert_allclose(series.turnover, [2.0, 2.0])
    np.testing.assert_allclose(net_return(series, 5.0), [390.0, 190.0])
    expected_ic = [
        stats.spearmanr(step_h[:4], truth_h[:4]).statistic,
        stats.spearmanr(step_h[4:], truth_h[4:]).statistic,
    ]
    np.testing.assert_allclose(series.ic, expected_ic, rtol=1e-12)
    np.testing.assert_allclose(series.ic_step[1], expected_ic, rtol=1e-12)  # step 1 ranks as step 2 here
    assert list(series.ic.index) == list(np.array(["2021-01-04", "2021-01-05"], dtype="datetime64[D]"))
    assert signal_series(last[:2], forecast[:2], target[:2], dates[:2], tickers[:2]) is None  # two tickers


def test_book_turnover_replaces_the_book_of_h_origins_earlier():
    w = np.array([[0.5, -0.5, 0.0], [0.0, -0.5, 0.5], [0.5, 0.0, -0.5], [-0.5, 0.5, 0.0]])
    # h = 1: the change from the day before; h = 2: book t replaces book t - 2 (the first two are built from nothing)
    np.testing.assert_allclose(book_turnover(w, 1), [1.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(book_turnover(w, 2), [1.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(book_turnover(w, 5), [1.0, 1.0, 1.0, 1.0])


def _panel_of_returns(rng, dates, tickers, horizon, signal):
    """Windows of ``tickers`` names over ``dates`` origins: realised h-day returns that overlap (sums of h daily
    shocks), and forecasts = signal * realised + an independent overlapping noise."""
    daily = rng.normal(0, 0.01, size=(dates + horizon, tickers))
    noise = rng.normal(0, 0.01, size=(dates + horizon, tickers))
    realised = np.stack([daily[t + 1 : t + 1 + horizon].sum(axis=0) for t in range(dates)])  # (D, K)
    independent = np.stack([noise[t + 1 : t + 1 + horizon].sum(axis=0) for t in range(dates)])
    return realised, signal * realised + independent


def test_a_perfect_forecast_and_a_useless_one():
    rng = np.random.default_rng(3)
    realised, _ = _panel_of_returns(rng, 60, 12, 5, 0.0)
    last = np.full(realised.size, 50.0)
    target = 50 * (1 + realised.reshape(-1))[:, None].repeat(5, axis=1)
    dates = np.repeat(np.arange(60).astype("datetime64[D]"), 12)
    tickers = np.tile(np.arange(12), 60)
    perfect = signal_stats(signal_series(last, target, target, dates, tickers), 5, 5.0)
    assert perfect["ic_mean"] == pytest.approx(1.0) and perfect["hit_rate"] == pytest.approx(1.0)
    assert perfect["long_short_bps"] > 0 and perfect["ic_p"] < 1e-6
    flat = np.full_like(target, 51.0)  # every ticker the same return: no ranking at all
    assert signal_series(last, flat, target, dates, tickers) is None


def test_seeds_average_date_by_date_and_years_pool_end_to_end():
    index = pd.Index(np.array(["2021-01-04", "2021-01-05"], dtype="datetime64[D]"))
    one = pd.Series([0.1, 0.3], index=index)
    a = SignalSeries(one, one, one * 100, one, pd.DataFrame({1: one}))
    b = SignalSeries(one + 0.2, one, one * 300, one, pd.DataFrame({1: one + 0.2}))
    mean = combine([a, b], "mean")
    np.testing.assert_allclose(mean.ic, [0.2, 0.4])
    np.testing.assert_allclose(mean.ic_step[1], [0.2, 0.4])
    np.testing.assert_allclose(mean.spread, [20.0, 60.0])
    assert len(combine([a, b], "concat").ic) == 4


def test_size_of_the_ic_test_under_the_null():
    """Forecasts independent of the returns, both overlapping h-day sums: the IC series is MA(h - 1) with mean
    zero, and its 5 % test must reject about 5 % of the time."""
    rng = np.random.default_rng(7)
    horizon, dates, draws = 10, 1250, 600
    rejected = []
    for _ in range(draws):
        realised, forecast = _panel_of_returns(rng, dates, 20, horizon, signal=0.0)
        rejected.append(diebold_mariano(rank_correlation(forecast, realised), horizon).p < 0.05)
    assert 0.03 <= np.mean(rejected) <= 0.075, np.mean(rejected)
