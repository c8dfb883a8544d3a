"""Large data: files read in chunks give the same panel and the same messages (file rows, not chunk rows) as one
read; the training sampler shards one permutation over DDP ranks without materialising it; the synthetic
generator stays finite over thousands of paths."""

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.data import BadValueError, SchemaError, StockDataModule, sources
from forecast.data.panel import build_panel
from forecast.data.sampler import EpochSeededSampler
from forecast.data.synthetic import MAX_DAILY_VARIANCE, _garch_path


def _panel(path, **kwargs):
    return StockDataModule(source="csv", path=str(path), base_len=3, horizon=2, **kwargs).load_panel()


@pytest.fixture
def two_row_chunks(monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_ROWS", 2)


def _shuffled_csv(tmp_path, small_panel):
    # rows out of (Name, Date) order and across chunks, so the sort and the code mapping are both exercised
    path = tmp_path / "shuffled.csv"
    small_panel.sample(frac=1.0, random_state=0).to_csv(path, index=False)
    return path


def test_chunked_read_equals_one_read(tmp_path, small_panel, monkeypatch):
    path = _shuffled_csv(tmp_path, small_panel)
    whole = _panel(path, channels=("Close", "Volume"))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 7)  # 3,000-odd rows: hundreds of chunks, the last one short
    chunked = _panel(path, channels=("Close", "Volume"))
    assert chunked.names == whole.names == ["SYN00", "SYN01", "SYN02"]
    np.testing.assert_array_equal(chunked.offsets, whole.offsets)
    np.testing.assert_array_equal(chunked.dates, whole.dates)
    torch.testing.assert_close(chunked.values, whole.values, rtol=0, atol=0)
    # and both equal the table sorted by hand
    expected = small_panel.sort_values(["Name", "Date"])
    np.testing.assert_array_equal(chunked.close.numpy(), expected["Close"].to_numpy())
    np.testing.assert_array_equal(chunked.values[:, 1].numpy(), np.log1p(expected["Volume"].to_numpy()))


def _split_blocks(frame: pd.DataFrame) -> pd.DataFrame:
    # SYN01's last half first, then everything else: tickers out of order and one ticker in two blocks
    late = (frame["Name"] == "SYN01") & (frame["Date"] > frame["Date"].median())
    return pd.concat([frame[late], frame[~late]])


@pytest.mark.parametrize(
    "arrange",
    [
        lambda f: f.sort_values(["Date", "Name"]),  # interleaved by date, as many merged files are
        lambda f: f.sort_values(["Name", "Date"], ascending=[False, True]),  # tickers in another order
        _split_blocks,
        lambda f: f.sample(frac=1.0, random_state=1),  # no order at all
    ],
)
def test_any_row_order_gives_the_panel_sorted_by_ticker_and_date(tmp_path, small_panel, arrange):
    path = tmp_path / "arranged.csv"
    arrange(small_panel).to_csv(path, index=False)
    panel = _panel(path, channels=("Close", "Volume"))
    expected = small_panel.sort_values(["Name", "Date"])
    np.testing.assert_array_equal(panel.close.numpy(), expected["Close"].to_numpy())
    np.testing.assert_array_equal(panel.dates, expected["Date"].to_numpy().astype("datetime64[D]"))
    np.testing.assert_array_equal(panel.values[:, 1].numpy(), np.log1p(expected["Volume"].to_numpy()))


@pytest.mark.parametrize(
    ("row", "text", "error", "message"),
    [
        (5, "2020-01-07,X,1,A", SchemaError, "bad.csv: non-numeric value 'X' in column Close at line 6"),
        (6, "someday,1,1,A", SchemaError, "bad.csv: unparseable date 'someday' in column Date at line 7"),
        (5, "2020-01-07,-1,1,A", BadValueError, r"non-positive price -1.0 in column Close at line 6 \(ticker A, 2020"),
        (7, "2020-01-02,5,1,A", BadValueError, "two rows for ticker A on 2020-01-02, at line 3 and line 8"),
    ],
)
def test_messages_give_file_rows_in_later_chunks(tmp_path, two_row_chunks, row, text, error, message):
    days = pd.bdate_range("2020-01-01", periods=8).strftime("%Y-%m-%d")
    lines = [f"{day},{10 + i},1,A" for i, day in enumerate(days)]
    lines[row - 1] = text
    path = tmp_path / "bad.csv"
    path.write_text("Date,Close,Volume,Name\n" + "\n".join(lines) + "\n")
    with pytest.raises(error, match=message):
        _panel(path)


def test_a_repeated_date_in_another_chunk_of_a_ticker_less_file_is_the_layout_error(tmp_path, two_row_chunks):
    # two tickers stacked in one file without a ticker column: the repeat lies chunks away from its first date
    days = list(pd.bdate_range("2020-01-01", periods=3).strftime("%Y-%m-%d"))
    path = tmp_path / "spy.csv"
    path.write_text("Date,Close\n" + "".join(f"{d},{i + 1}\n" for i, d in enumerate(days + days)))
    with pytest.raises(SchemaError, match=r"spy.csv: no ticker column .* and its dates repeat"):
        _panel(path)


def test_an_error_in_one_of_many_files_names_that_file_and_its_row(tmp_path, two_row_chunks):
    folder = tmp_path / "stocks"
    folder.mkdir()
    days = pd.bdate_range("2020-01-01", periods=6).strftime("%Y-%m-%d")
    for name, bad_row in (("aaa.csv", None), ("bbb.csv", 4)):
        rows = [f"{d},{5 + i}" if i + 1 != bad_row else f"{d},n/a?" for i, d in enumerate(days)]
        (folder / name).write_text("Date,Close\n" + "\n".join(rows) + "\n")
    with pytest.raises(SchemaError, match=r"bbb.csv: non-numeric value 'n/a\?' in column Close at line 5"):
        _panel(folder)


def test_build_panel_refuses_rows_out_of_ticker_order():
    frame = pd.DataFrame(
        {"Date": pd.to_datetime(["2020-01-01", "2020-01-01"]), "Name": ["B", "A"], "Close": [1.0, 2.0]}
    )
    with pytest.raises(ValueError, match="sorted by Name, then Date"):
        build_panel(frame, ["Close"], None, min_length=1)


class _Ten(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 10


def test_sampler_is_one_permutation_by_seed_and_epoch_sharded_over_ranks():
    alone = EpochSeededSampler(_Ten(), seed=3)
    alone.set_epoch(2)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(3 * 100_003 + 2)).tolist()
    assert list(alone) == expected
    assert len(alone) == 10
    ranks = []
    for rank in range(3):
        sampler = EpochSeededSampler(_Ten(), seed=3, num_replicas=3, rank=rank)
        sampler.set_epoch(2)
        ranks.append(list(sampler))
        assert len(sampler) == 4  # ceil(10 / 3): padded as DistributedSampler pads
    padded = expected + expected[:2]
    assert ranks == [padded[0::3], padded[1::3], padded[2::3]]
    epoch_three = EpochSeededSampler(_Ten(), seed=3)
    epoch_three.set_epoch(3)
    assert list(epoch_three) != expected


class _Shocks:
    """A generator whose Student-t draws are given: one huge shock, then ordinary ones."""

    def __init__(self, shocks: np.ndarray) -> None:
        self.shocks = shocks

    def standard_t(self, dof: float, size: int) -> np.ndarray:
        return self.shocks[:size] * np.sqrt(dof / (dof - 2.0))  # undo the unit-variance scaling


def test_synthetic_volatility_is_capped_after_a_huge_shock():
    shocks = np.array([1e4, 1.0, 1.0, 1.0])
    returns = _garch_path(_Shocks(shocks), 4, omega=3e-6, alpha=0.06, beta=0.91, dof=4.0)
    assert returns[0] > 10  # the shock itself goes through
    np.testing.assert_allclose(returns[1], np.sqrt(MAX_DAILY_VARIANCE))  # the volatility after it is capped at 10%
    assert np.isfinite(returns).all()


def test_predictions_written_a_slice_of_windows_at_a_time_equal_one_table(monkeypatch):
    import io

    from forecast.callbacks import prediction_writer
    from forecast.callbacks.prediction_writer import CSVPredictionWriter, prediction_frame

    dm = StockDataModule(source="synthetic", synthetic_tickers=3, horizon=4)
    dm.setup("test")
    dataset = dm.datasets["test"]
    index = np.arange(len(dataset))
    forecast = np.random.default_rng(0).uniform(10, 20, size=(len(index), 4))
    quantiles = np.stack([forecast - 1, forecast, forecast + 1], axis=1)
    whole = prediction_frame(dataset, index, forecast, quantiles, [0.1, 0.5, 0.9])
    monkeypatch.setattr(prediction_writer, "WINDOWS_PER_WRITE", 7)  # hundreds of slices, the last one short
    handle = io.StringIO()
    rows, targets = CSVPredictionWriter._write_rows(handle, dataset, index, forecast, quantiles, [0.1, 0.5, 0.9])
    assert handle.getvalue() == whole.to_csv(index=False, float_format="%.6f")
    assert rows == len(whole) == len(index) * 4
    assert (min(targets), max(targets)) == (whole["target_date"].min(), whole["target_date"].max())
    # the metadata of each window, straight from the panel: its ticker and last base day
    tickers, origins = dataset.origins(index[[0, -1]])
    batch = dataset.__getitems__([0, len(index) - 1])
    assert list(tickers) == batch["ticker"] and [str(d) for d in origins] == batch["origin_date"]


def test_a_ticker_of_digits_is_one_ticker_in_every_chunk(tmp_path, two_row_chunks):
    # pandas types each chunk alone: 0700 would be the number 700 in a chunk of digits and "0700" beside letters
    days = pd.bdate_range("2020-01-01", periods=4).strftime("%Y-%m-%d")
    rows = [f"{d},{10 + i},0700" for i, d in enumerate(days)] + [f"{d},{20 + i},ABC" for i, d in enumerate(days)]
    rows[2], rows[4] = rows[4], rows[2]  # the second chunk mixes 0700 with ABC
    path = tmp_path / "hk.csv"
    path.write_text("Date,Close,Name\n" + "\n".join(rows) + "\n")
    panel = StockDataModule(source="csv", path=str(path), base_len=2, horizon=1).load_panel()
    assert panel.names == ["0700", "ABC"]
    np.testing.assert_array_equal(panel.offsets, [0, 4, 8])
    np.testing.assert_array_equal(panel.close.numpy()[:4], [10, 11, 12, 13])
