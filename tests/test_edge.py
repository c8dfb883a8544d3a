"""Where the edge comes from: per-ticker MAE and MASE, the share of tickers won, and the long-short book's annual
numbers, each against a hand-computed case."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.backtest.signal import book_stats
from forecast.backtest.tickers import mean_mase, naive_scale, share_beating, ticker_scores
from forecast.data.panel import build_panel


def _panel():
    # A: closes 10, 12, 11, 15 (2015) then 16 (2016); B: 100, 100, 104 (2015) then 90 (2016)
    days = {"A": ["2015-01-02", "2015-01-05", "2015-01-06", "2015-01-07", "2016-01-04"],
            "B": ["2015-01-02", "2015-01-05", "2015-01-06", "2016-01-04"]}  # fmt: skip
    closes = {"A": [10, 12, 11, 15, 16], "B": [100, 100, 104, 90]}
    frame = pd.DataFrame(
        [(pd.Timestamp(d), float(c), n) for n in days for d, c in zip(days[n], closes[n], strict=True)],
        columns=["Date", "Close", "Name"],
    )
    return build_panel(frame, ["Close"], None, 1)


def test_the_scale_is_the_in_sample_one_step_naive_mae_through_the_training_end():
    scale = naive_scale(_panel(), "2015-12-31")
    # A: |12-10|, |11-12|, |15-11| = 2, 1, 4 -> 7/3; B: 0, 4 -> 2 (2016's days are not in-sample)
    np.testing.assert_allclose(scale, [7 / 3, 2.0])
    assert np.isnan(naive_scale(_panel(), "2015-01-02")).all()  # one day each: no difference to average


def test_ticker_scores_mase_and_the_share_of_tickers_won_by_hand():
    # windows: two of ticker 0, one of ticker 1; horizon 2
    target = torch.tensor([[10.0, 12.0], [11.0, 11.0], [100.0, 104.0]])
    model = torch.tensor([[11.0, 12.0], [11.0, 13.0], [101.0, 101.0]])  # |e|: (1, 0), (0, 2), (1, 3)
    naive = torch.tensor([[10.0, 10.0], [12.0, 12.0], [100.0, 100.0]])  # |e|: (0, 2), (1, 1), (0, 4)
    frame = ticker_scores(
        {"model": model, "naive": naive}, target, np.array([0, 0, 1]), ["A", "B"], np.array([2.0, 4.0])
    )
    assert list(frame.index) == ["A", "B"] and list(frame["windows"]) == [2, 1]
    np.testing.assert_allclose(frame["mae_model"], [(0.5 + 1.0) / 2, 2.0])
    np.testing.assert_allclose(frame["mae_naive"], [(1.0 + 1.0) / 2, 2.0])
    np.testing.assert_allclose(frame["mase_model"], [0.75 / 2.0, 2.0 / 4.0])
    assert mean_mase(frame, "model") == pytest.approx((0.375 + 0.5) / 2)
    # A: 0.75 < 1.0 won; B: 2.0 < 2.0 not won (a tie is no win)
    assert share_beating(frame, "model", "naive") == 0.5


def test_book_stats_by_hand():
    horizon = 2
    net = pd.Series([20.0, -40.0, 60.0, 0.0])  # bp per origin -> daily 0.1, -0.2, 0.3, 0.0 % of capital
    stats = book_stats(net, horizon)
    daily = np.array([0.1, -0.2, 0.3, 0.0])
    assert stats["annual_return_pct"] == pytest.approx(252 * daily.mean())
    assert stats["volatility_pct"] == pytest.approx(math.sqrt(252) * daily.std(ddof=1))
    assert stats["sharpe"] == pytest.approx(stats["annual_return_pct"] / stats["volatility_pct"])
    # cumulative 0.1, -0.1, 0.2, 0.2: the fall from the peak 0.1 to -0.1
    assert stats["max_drawdown_pct"] == pytest.approx(0.2)
    assert book_stats(pd.Series([-10.0, -10.0]), 1)["max_drawdown_pct"] == pytest.approx(0.2)  # from the start, 0
    assert book_stats(pd.Series([5.0, 5.0]), 1)["sharpe"] is None  # no variation: no ratio
