"""Other file layouts: lowercase columns, one file per ticker (a folder or a glob), a market-data client's single
ticker with Adj Close, and any Kaggle dataset — each on small files written here."""

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from forecast.data import StockDataModule, sources
from forecast.data.errors import DataError, SchemaError
from forecast.data.layouts import data_files, ticker_from_file

DAYS = pd.bdate_range("2020-01-01", periods=60)


def _series(start: float) -> np.ndarray:
    return start + np.arange(len(DAYS), dtype=float)


def _load(path, **kwargs):
    return StockDataModule(source="csv", path=str(path), base_len=5, horizon=2, **kwargs).load_panel()


def test_lowercase_columns_of_a_merged_file(tmp_path):
    # the other Kaggle stock datasets: date,open,high,low,close,volume,Name
    frame = pd.concat(
        [pd.DataFrame({"date": DAYS, "open": _series(s), "high": _series(s) + 1, "low": _series(s) - 1,
                       "close": _series(s), "volume": 1000, "Name": n}) for s, n in ((10, "AAA"), (50, "BBB"))]
    )  # fmt: skip
    frame.to_csv(tmp_path / "all.csv", index=False)
    panel = _load(tmp_path / "all.csv", channels=("Close", "Volume"))
    assert panel.names == ["AAA", "BBB"]
    np.testing.assert_allclose(panel.close.numpy()[:3], [10, 11, 12])
    assert panel.values.shape == (120, 2)


def _per_ticker_files(folder):
    # stooq-style per-ticker files: aapl.us.txt with Date,Open,High,Low,Close,Volume,OpenInt and no ticker column
    folder.mkdir()
    for name, start in (("aapl.us.txt", 100.0), ("msft.us.txt", 200.0)):
        pd.DataFrame(
            {"Date": DAYS.strftime("%Y-%m-%d"), "Open": _series(start), "High": _series(start), "Low": _series(start),
             "Close": _series(start), "Volume": 5, "OpenInt": 0}
        ).to_csv(folder / name, index=False)  # fmt: skip
    (folder / ".hidden.txt").write_text("not data")
    (folder / "README.md").write_text("not data")


def test_a_folder_or_a_glob_of_per_ticker_files(tmp_path):
    _per_ticker_files(tmp_path / "stocks")
    assert ticker_from_file("aapl.us.txt") == "AAPL"
    assert [p.name for p in data_files(tmp_path / "stocks")] == ["aapl.us.txt", "msft.us.txt"]
    for path in (tmp_path / "stocks", tmp_path / "stocks" / "*.us.txt"):
        panel = _load(path)
        assert panel.names == ["AAPL", "MSFT"]
        np.testing.assert_allclose(panel.close.numpy()[[0, 60]], [100.0, 200.0])


def test_a_single_ticker_file_with_adj_close_only_when_asked(tmp_path):
    # a market-data client's download: Date,Open,High,Low,Close,Adj Close,Volume for one ticker
    frame = pd.DataFrame({"Date": DAYS, "Open": 1.0, "High": 1.0, "Low": 1.0, "Close": _series(100),
                          "Adj Close": _series(50), "Volume": 7})  # fmt: skip
    frame.to_csv(tmp_path / "SPY.csv", index=False)
    close = _load(tmp_path / "SPY.csv")
    assert close.names == ["SPY"] and close.close.numpy()[0] == 100.0
    adjusted = _load(tmp_path / "SPY.csv", price_column="Adj Close")
    assert adjusted.close.numpy()[0] == 50.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,price,Name\n2020-01-01,1,A\n", "no date column (looked for Date, Timestamp, Datetime); found columns: "
         "when, price, Name"),
        ("Date,price,Name\n2020-01-01,1,A\n", "no 'Close' column; found columns: Date, price, Name; choose one with "
         "price_column="),
        ("Date,Close\n2020-01-01,1\n2020-01-01,2\n", "no ticker column (Name, Ticker or Symbol) and its dates repeat"),
    ],
)  # fmt: skip
def test_columns_that_do_not_match_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(SchemaError) as info:
        _load(tmp_path / "x.csv")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_glob_that_matches_nothing_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*\*\.txt"):
        _load(tmp_path / "*.txt")


class FakeDatasetApi:
    """Stands in for KaggleApi: a dataset of per-ticker files in a subfolder, counting downloads."""

    calls: ClassVar[list[str]] = []

    def dataset_download_files(self, dataset, path, unzip, quiet):
        FakeDatasetApi.calls.append(dataset)
        _per_ticker_files(Path(path) / "Stocks")


def test_any_kaggle_dataset_with_a_pattern_for_many_files(tmp_path, monkeypatch):
    FakeDatasetApi.calls = []
    monkeypatch.setattr(sources, "_kaggle_api", FakeDatasetApi)
    for _ in range(2):
        dm = StockDataModule(
            source="kaggle", cache_dir=str(tmp_path), kaggle_dataset="someone/us-stocks", kaggle_file="*.us.txt",
            base_len=5, horizon=2,
        )  # fmt: skip
        dm.prepare_data()
        panel = dm.load_panel()
    assert FakeDatasetApi.calls == ["someone/us-stocks"]  # downloaded once
    folder = tmp_path / "someone__us-stocks"  # its own cache folder
    assert sorted(p.name for p in folder.iterdir()) == ["aapl.us.txt", "msft.us.txt"]
    assert panel.names == ["AAPL", "MSFT"]
    with pytest.raises(DataError, match="has no file matching"):
        StockDataModule(
            source="kaggle", cache_dir=str(tmp_path), kaggle_dataset="a/b", kaggle_file="*.csv"
        ).prepare_data()
