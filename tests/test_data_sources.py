"""Sources and validation: bad input messages, cleaning, Kaggle through a fake API, the synthetic generator."""

import logging

import numpy as np
import pandas as pd
import pytest
from helpers import require

from forecast.data import (
    BadValueError,
    DataError,
    KaggleCredentialsError,
    NotEnoughDataError,
    SchemaError,
    StockDataModule,
    UnknownTickerError,
    sources,
    synthetic_panel,
)
from forecast.data.validate import clean_panel

GOOD = """Date,Open,High,Low,Close,Volume,Name
2020-01-02,1,1,1,10.0,100,A
2020-01-03,1,1,1,11.0,100,A
2020-01-06,1,1,1,12.0,100,A
"""


def _setup(tmp_path, text, **kwargs):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    dm = StockDataModule(source="csv", path=str(path), base_len=2, horizon=1, **kwargs)
    dm.load_panel()
    return dm


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            GOOD.replace("Close,", "Price,"),
            SchemaError,
            r"no 'Close' column; found columns: Date, Open, High, Low, Price",
        ),
        (
            GOOD.replace("2020-01-03", "Jan third"),
            SchemaError,
            r"unparseable date 'Jan third' in column Date at line 3",
        ),
        (GOOD.replace("11.0", "eleven"), SchemaError, "non-numeric value 'eleven' in column Close at line 3"),
        (GOOD.replace("12.0", "-3"), BadValueError, r"non-positive price -3.0 in column Close at line 4 \(ticker A"),
        (
            GOOD + "2020-01-03,1,1,1,11.0,100,A\n",
            BadValueError,
            "two rows for ticker A on 2020-01-03, at line 3 and line 5",
        ),
        ("a,b\n1,2\n1,2,3,4\n", SchemaError, r"cannot be read as a table \(ParserError: Error tokenizing data"),
        ("Date;Close;Name\n2020-01-02;1;A\n", SchemaError, r"no date column .*; found columns: Date;Close;Name"),
        ("", SchemaError, "cannot be read as a table"),
    ],
)
def test_bad_files_raise_one_line_messages(tmp_path, text, error, message):
    with pytest.raises(error, match=message) as info:
        _setup(tmp_path, text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope.csv; give \(path=\)"):
        StockDataModule(source="csv", path=str(tmp_path / "nope.csv")).load_panel()


def test_unknown_ticker_lists_available(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), tickers=["SYN01", "ZZZ"])
    with pytest.raises(UnknownTickerError, match=r"unknown ticker\(s\) ZZZ; available: SYN00 SYN01 SYN02"):
        dm.load_panel()


def test_short_ticker_dropped_with_warning_and_none_long_enough_raises(tmp_path, caplog):
    long = pd.DataFrame({"Date": pd.bdate_range("2020-01-01", periods=10), "Close": 5.0, "Name": "LONG"})
    short = pd.DataFrame({"Date": pd.bdate_range("2020-01-01", periods=3), "Close": 5.0, "Name": "SHORT"})
    path = tmp_path / "p.csv"
    pd.concat([long, short]).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        panel = StockDataModule(source="csv", path=str(path), base_len=4, horizon=2).load_panel()
    assert panel.names == ["LONG"]
    assert "dropping 1 ticker(s) with fewer than 6 days" in caplog.text and "SHORT (3)" in caplog.text
    with pytest.raises(NotEnoughDataError, match="no ticker has the 11 days one window needs"):
        StockDataModule(source="csv", path=str(path), base_len=8, horizon=3).load_panel()


def test_empty_split_says_which_dates(small_csv):
    dm = StockDataModule(source="csv", path=str(small_csv), train_end="2010-12-31", val_end="2011-12-31")
    with pytest.raises(NotEnoughDataError, match="the train split has no windows: the data spans 2014-01-01"):
        dm.setup("fit")


def test_nan_forward_filled_within_ticker_and_leading_dropped(caplog):
    raw = pd.DataFrame(
        {
            "Date": ["2020-01-03", "2020-01-02", "2020-01-06", "2020-01-02", "2020-01-03", "2020-01-06"],
            "Close": [np.nan, 10.0, 12.0, np.nan, 20.0, np.nan],
            "Name": ["A", "A", "A", "B", "B", "B"],
        }
    )
    with caplog.at_level(logging.INFO):
        frame = clean_panel(raw, ["Close"], origin="t")
    # unsorted input is sorted; A's 01-03 takes 01-02's value (never B's); B's leading NaN row is dropped
    assert frame["Close"].tolist() == [10.0, 10.0, 12.0, 20.0, 20.0]
    assert frame["Name"].tolist() == ["A", "A", "A", "B", "B"]
    assert "forward-filled 2 missing value(s)" in caplog.text and "dropped 1 leading row(s)" in caplog.text


def test_parquet_and_gzip_sources(tmp_path, small_panel):
    small_panel.to_csv(tmp_path / "p.csv.gz", index=False)
    gz = StockDataModule(source="csv", path=str(tmp_path / "p.csv.gz")).load_panel()
    assert gz.names == ["SYN00", "SYN01", "SYN02"]
    require("pyarrow", "parquet")
    small_panel.to_parquet(tmp_path / "p.parquet")
    pq = StockDataModule(source="csv", path=str(tmp_path / "p.parquet")).load_panel()
    np.testing.assert_allclose(pq.close.numpy(), gz.close.numpy())


class FakeKaggleApi:
    """Stands in for kaggle's KaggleApi at the boundary: writes the dataset as a CSV, counts downloads."""

    calls = 0

    def __init__(self, frame):
        self.frame = frame

    def dataset_download_files(self, dataset, path, unzip, quiet):
        assert dataset == sources.KAGGLE_DATASET and unzip
        FakeKaggleApi.calls += 1
        self.frame.to_csv(f"{path}/{sources.KAGGLE_FILE}", index=False)


def test_kaggle_downloads_once_into_cache(tmp_path, monkeypatch, small_panel):
    FakeKaggleApi.calls = 0
    monkeypatch.setattr(sources, "_kaggle_api", lambda: FakeKaggleApi(small_panel))
    for _ in range(2):
        dm = StockDataModule(source="kaggle", cache_dir=str(tmp_path))
        dm.prepare_data()
        dm.setup("fit")
    assert FakeKaggleApi.calls == 1
    assert (tmp_path / "djia" / sources.KAGGLE_FILE).is_file()
    assert [p.name for p in (tmp_path / "djia").iterdir()] == [sources.KAGGLE_FILE]  # no temp folder left
    assert dm.panel.names == ["SYN00", "SYN01", "SYN02"]


def test_kaggle_missing_credentials_message(tmp_path, monkeypatch):
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    dm = StockDataModule(source="kaggle", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(KaggleCredentialsError, match="no Kaggle credentials found: set KAGGLE_API_TOKEN") as info:
        dm.prepare_data()
    assert "or give the path of a CSV you downloaded" in str(info.value)
    assert not (tmp_path / "cache" / "djia" / sources.KAGGLE_FILE).exists()


def test_kaggle_rejected_credentials_become_one_line(tmp_path, monkeypatch):
    """The real package exits (SystemExit) when authentication fails; we turn that into our error."""
    monkeypatch.setenv("KAGGLE_USERNAME", "nobody")
    monkeypatch.setenv("KAGGLE_KEY", "x")
    # (kaggle/__init__ rebinds the name kaggle.api to an instance, so import the class, not the module)
    from kaggle.api.kaggle_api_extended import KaggleApi

    def refuse(self):
        raise SystemExit(1)

    monkeypatch.setattr(KaggleApi, "authenticate", refuse)
    with pytest.raises(KaggleCredentialsError, match="Kaggle rejected the configured credentials"):
        sources._kaggle_api()


def test_auto_source_choice(tmp_path, monkeypatch, small_csv):
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sources.choose_source("auto", str(small_csv))[0] == "csv"
    assert sources.choose_source("auto", None) == ("synthetic", "no --data.path and no Kaggle credentials")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    assert sources.choose_source("auto", None)[0] == "kaggle"
    # a path the user gives is never swapped for other data: missing is an error, credentials or not
    for source in ("auto", "csv", "kaggle", "synthetic"):
        with pytest.raises(DataError, match=r"data file not found: .*missing\.csv"):
            sources.choose_source(source, str(tmp_path / "missing.csv"))
    for source in ("kaggle", "synthetic"):
        with pytest.raises(DataError, match=f"is given but data.source is {source}"):
            sources.choose_source(source, str(small_csv))


def test_synthetic_is_deterministic_and_consistent():
    a, b = synthetic_panel(n_tickers=4, seed=3), synthetic_panel(n_tickers=4, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_panel(n_tickers=4, seed=4)["Close"].equals(a["Close"])
    assert (a[["Open", "High", "Low", "Close"]] > 0).all().all()
    assert (a["High"] >= a[["Open", "Close"]].max(axis=1)).all()
    assert (a["Low"] <= a[["Open", "Close"]].min(axis=1)).all()
    assert list(a.columns) == ["Date", "Open", "High", "Low", "Close", "Volume", "Name"]


def test_synthetic_returns_have_fat_tails_clustering_and_correlation():
    panel = synthetic_panel(n_tickers=4, seed=0)
    returns = panel.pivot(index="Date", columns="Name", values="Close").apply(np.log).diff().dropna()
    for name in returns:
        r = returns[name].to_numpy()
        z = (r - r.mean()) / r.std()
        assert (z**4).mean() > 3.0, "kurtosis of a normal is 3: fat tails need more"
        magnitude = np.abs(r)
        assert np.corrcoef(magnitude[:-1], magnitude[1:])[0, 1] > 0.05, "volatility clustering"
    corr = returns.corr().to_numpy()[np.triu_indices(4, 1)]
    assert corr.min() > 0.1, "tickers share a market factor"
