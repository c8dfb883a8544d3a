"""Windows, splits and normalisation against hand-computed indices and the real data's protocol counts."""

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.data import StockDataModule
from forecast.data.normalise import METHODS, denormalise, normalise, window_stats
from forecast.data.panel import build_panel, market_level
from forecast.data.validate import clean_panel
from forecast.data.windows import date_splits, window_starts


def _tiny_frame():
    """Ticker A: 9 days from Wed 2020-01-01 (closes 1..9), ticker B: 6 days (closes 101..106)."""
    a = pd.DataFrame({"Date": pd.bdate_range("2020-01-01", periods=9), "Close": np.arange(1.0, 10.0), "Name": "A"})
    b = pd.DataFrame({"Date": pd.bdate_range("2020-01-01", periods=6), "Close": np.arange(101.0, 107.0), "Name": "B"})
    return clean_panel(pd.concat([b, a]), ["Close"], origin="tiny")


def test_window_starts_match_hand_computed_indices():
    panel = build_panel(_tiny_frame(), ["Close"], None, min_length=5)
    # rows 0..8 belong to A, 9..14 to B; a window of 5 rows stays inside its ticker
    assert panel.names == ["A", "B"]
    assert window_starts(panel, 5).tolist() == [0, 1, 2, 3, 4, 9, 10]
    assert window_starts(panel, 5, stride=2).tolist() == [0, 2, 4, 9]


def test_date_splits_by_target_days_hand_computed():
    panel = build_panel(_tiny_frame(), ["Close"], None, min_length=5)
    # base 3, horizon 2: window s has targets at rows s+3, s+4. A's dates: rows 0..8 = 01-01 02 03 06 07 08 09 10 13
    splits = date_splits(panel, base_len=3, horizon=2, train_end="2020-01-07", val_end="2020-01-09")
    # train (last target <= 01-07): A s=0 (01-06, 01-07); B s=9 (its rows 12, 13 = 01-06, 01-07)
    assert splits["train"].tolist() == [0, 9]
    # val (first > 01-07, last <= 01-09): A s=2 (01-08, 01-09); A s=1 and B s=10 straddle train_end
    assert splits["val"].tolist() == [2]
    # test (first > 01-09): A s=4 (01-10, 01-13); A s=3 (01-09, 01-10) straddles val_end
    assert splits["test"].tolist() == [4]


def test_test_end_closes_the_test_split_like_a_backtest_year():
    panel = build_panel(_tiny_frame(), ["Close"], None, min_length=5)
    open_ended = date_splits(panel, base_len=3, horizon=2, train_end="2020-01-06", val_end="2020-01-07")
    # first target > 01-07: A s=2 (01-08, 01-09), s=3 (01-09, 01-10), s=4 (01-10, 01-13); B s=10 starts 01-07
    assert open_ended["test"].tolist() == [2, 3, 4]
    closed = date_splits(
        panel, base_len=3, horizon=2, train_end="2020-01-06", val_end="2020-01-07", test_end="2020-01-09"
    )
    # last target <= 01-09 as well: only A s=2; the training and validation splits do not change
    assert closed["test"].tolist() == [2]
    assert closed["train"].tolist() == open_ended["train"].tolist()
    assert closed["val"].tolist() == open_ended["val"].tolist()


def test_the_calibration_split_is_the_validation_year_last_days_hand_computed():
    panel = build_panel(_tiny_frame(), ["Close"], None, min_length=5)
    # base 2, horizon 2: window s has targets at rows s+2, s+3. Validation (first target > 01-03, last <= 01-13):
    # A s=1..5 (targets 06/07, 07/08, 08/09, 09/10, 10/13) and B s=10, 11 (06/07, 07/08): first target days
    # 06 07 08 09 10; fraction 0.4 cuts at the 3rd of 5 (int(5 · 0.6) = 3): 01-08
    splits = date_splits(panel, 2, 2, train_end="2020-01-03", val_end="2020-01-13", calibration_fraction=0.4)
    assert splits["val"].tolist() == [1, 2, 10, 11]  # last target on or before 01-08
    assert splits["calibration"].tolist() == [4, 5]  # first target after 01-08; A s=3 (08/09) straddles: neither
    plain = date_splits(panel, 2, 2, train_end="2020-01-03", val_end="2020-01-13")
    assert plain["val"].tolist() == [1, 2, 3, 4, 5, 10, 11] and plain["calibration"].tolist() == []
    assert plain["train"].tolist() == splits["train"].tolist() and plain["test"].tolist() == splits["test"].tolist()


def test_batch_contents_hand_computed():
    panel = build_panel(_tiny_frame(), ["Close"], None, min_length=5)
    from forecast.data.windows import WindowDataset

    ds = WindowDataset(panel, np.array([1, 10]), base_len=3, horizon=2, normalisation="last")
    batch = ds.__getitems__([0, 1])
    assert batch["base_close"].tolist() == [[2.0, 3.0, 4.0], [102.0, 103.0, 104.0]]
    assert batch["target"].tolist() == [[5.0, 6.0], [105.0, 106.0]]
    torch.testing.assert_close(batch["x"][0, 0], torch.tensor([0.5, 0.75, 1.0]))
    torch.testing.assert_close(batch["y"][1, 0], torch.tensor([105 / 104, 106 / 104]))
    assert batch["ticker"] == ["A", "B"]
    assert batch["origin_date"] == ["2020-01-06", "2020-01-06"]  # A's row 3 and B's 4th day (row 12)
    assert ds.target_dates(np.array([0])).astype(str).tolist() == [["2020-01-07", "2020-01-08"]]


@pytest.mark.parametrize("method", METHODS)
def test_inverse_normalisation_is_exact(method):
    g = torch.Generator().manual_seed(0)
    base = 50 + torch.randn(16, 2, 30, generator=g, dtype=torch.float64).cumsum(-1)
    future = 50 + torch.randn(16, 2, 10, generator=g, dtype=torch.float64).cumsum(-1)
    loc, scale = window_stats(base, method)
    roundtrip = denormalise(normalise(future, loc, scale, method), loc, scale, method)
    torch.testing.assert_close(roundtrip, future, rtol=1e-12, atol=1e-10)


def test_no_base_contains_its_target_and_no_window_crosses_tickers(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), base_len=20, horizon=5)
    dm.setup("fit")
    panel = dm.panel
    for name in ("train", "val", "test"):
        ds = dm.datasets[name]
        starts = ds.starts.numpy()
        owner_first = panel.ticker_of(starts)
        owner_last = panel.ticker_of(starts + 20 + 5 - 1)
        assert (owner_first == owner_last).all(), name
        base_last = panel.dates[starts + 19]
        target_first = panel.dates[starts + 20]
        assert (base_last < target_first).all()


def test_normalised_inputs_do_not_depend_on_target_days(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), base_len=20, horizon=5)
    dm.setup("fit")
    ds = dm.datasets["val"]
    picked = [0, 60, 120]  # far enough apart that no window's base holds another's target
    before = ds.__getitems__(picked)
    rows = ds.starts[picked, None] + 20 + torch.arange(5)
    dm.panel.close[rows] *= 3.0  # change the future only
    dm.panel.values[rows] *= 3.0
    after = ds.__getitems__(picked)
    torch.testing.assert_close(after["x"], before["x"])
    torch.testing.assert_close(after["loc"], before["loc"])
    assert not torch.equal(after["y"], before["y"])


def test_stride_thins_training_windows_only(small_csv):
    full = StockDataModule(source="csv", path=str(small_csv))
    thin = StockDataModule(source="csv", path=str(small_csv), stride=5)
    full.setup("fit")
    thin.setup("fit")
    assert len(thin.datasets["train"]) == pytest.approx(len(full.datasets["train"]) / 5, abs=3)
    assert len(thin.datasets["val"]) == len(full.datasets["val"])


def test_latest_set_forecasts_next_trading_days(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), predict_set="latest")
    dm.setup("predict")
    ds = dm.datasets["predict"]
    assert len(ds) == 3
    batch = ds.__getitems__([0, 1, 2])
    assert "y" not in batch and "target" not in batch
    assert set(batch["origin_date"]) == {"2017-12-29"}
    dates = dm.target_dates(np.array([0]))[0].astype(str)
    # NYSE sessions after Friday 2017-12-29: not New Year's Day (Mon 01-01) nor Martin Luther King Day (Mon 01-15)
    assert list(dates) == [
        "2018-01-02", "2018-01-03", "2018-01-04", "2018-01-05", "2018-01-08",
        "2018-01-09", "2018-01-10", "2018-01-11", "2018-01-12", "2018-01-16",
    ]  # fmt: skip


def test_trading_calendar_skips_good_friday_and_follows_the_exchange():
    from forecast.data.calendar import next_sessions
    from forecast.data.errors import DataError

    origin = np.array(["2018-03-28"], dtype="datetime64[D]")  # Wednesday before Good Friday 2018-03-30
    nyse = next_sessions(origin, 3, "XNYS")[0].astype(str).tolist()
    assert nyse == ["2018-03-29", "2018-04-02", "2018-04-03"]
    london = next_sessions(origin, 3, "XLON")[0].astype(str).tolist()  # also closed on Easter Monday
    assert london == ["2018-03-29", "2018-04-03", "2018-04-04"]
    with pytest.raises(DataError, match="unknown exchange calendar 'NYSEE'"):
        next_sessions(origin, 3, "NYSEE")


def test_tutorial_split_is_random_and_non_overlapping(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), split="tutorial")
    dm.setup("fit")
    train, val = dm.datasets["train"].starts.numpy(), dm.datasets["val"].starts.numpy()
    assert not set(train) & set(val)
    assert np.all(np.diff(np.sort(np.concatenate([train, val]))) >= 40)
    assert len(train) / (len(train) + len(val)) == pytest.approx(0.7, abs=0.02)
    # leaky: some validation window lies before some training window in time
    assert dm.panel.dates[val].min() < dm.panel.dates[train].max()


def test_real_data_protocol_counts(djia_path):
    dm = StockDataModule(source="csv", path=str(djia_path))
    dm.setup("fit")
    assert len(dm.panel.names) == 31
    assert {k: len(dm.datasets[k]) for k in ("train", "val", "test")} == {"train": 76810, "val": 7533, "test": 7502}
    test = dm.datasets["test"]
    first_targets = dm.panel.dates[test.starts.numpy() + 30]
    assert first_targets.min() == np.datetime64("2017-01-03")


def test_real_data_ohlc_channels_forward_fill(djia_path, caplog):
    dm = StockDataModule(source="csv", path=str(djia_path), channels=["Open", "Close"], tickers=["DIS", "AAPL"])
    with caplog.at_level("INFO"):
        dm.setup("fit")
    assert "forward-filled" in caplog.text
    assert torch.isfinite(dm.panel.values).all()
    assert dm.panel.names == ["AAPL", "DIS"]


def test_market_level_is_the_equal_weighted_index_by_hand():
    # A: 10 → 11 → 12.1 (+10%, +10%); B: 20 → 20 (0%), then no close on day 3
    frame = pd.DataFrame(
        {
            "Name": ["A", "A", "A", "B", "B"],
            "Date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-01", "2020-01-02"]),
            "Close": [10.0, 11.0, 12.1, 20.0, 20.0],
        }
    )
    day2 = 100 * np.exp(np.log(1.1) / 2)  # mean of log(1.1) and log(1)
    day3 = day2 * 1.1  # only A trades: its own return
    expected = [100.0, day2, day3, 100.0, day2]
    np.testing.assert_allclose(market_level(frame).to_numpy(), expected, rtol=1e-12)


def test_market_channel_feeds_the_windows():
    dm = StockDataModule(source="synthetic", synthetic_tickers=3, channels=("Close", "Market"), batch_size=16)
    dm.setup("fit")
    assert dm.in_channels == 2 and dm.panel.channels == ["Close", "Market"]
    market = dm.panel.values[:, 1]
    # the same date has the same market level in every ticker's rows
    by_date = pd.Series(market.numpy()).groupby(dm.panel.dates).nunique()
    assert (by_date == 1).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[1] == 2 and torch.isfinite(batch["x"]).all()
