"""What real files contain: non-finite prices, tickers spelled like missing values, times of day and time-zone
offsets, blank lines, US- and day-first dates; and predictions files read back with their tickers as text."""

import numpy as np
import pandas as pd
import pytest
from helpers import run_main

from forecast.backtest.scoring import read_predictions
from forecast.data import StockDataModule
from forecast.data.errors import BadValueError, SchemaError

DAYS = pd.bdate_range("2020-01-01", periods=40)


def _write(tmp_path, rows, name="prices.csv", header="Date,Close,Name"):
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _rows(ticker="A", dates=None, price=lambda k: 10 + k):
    return [f"{d},{price(k)},{ticker}" for k, d in enumerate(dates if dates is not None else DAYS.strftime("%Y-%m-%d"))]


def _panel(path, **options):
    return StockDataModule(source="csv", path=str(path), base_len=5, horizon=2, **options).load_panel()


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_a_non_finite_price_is_one_line_with_its_line(tmp_path, value):
    rows = _rows()
    rows[6] = f"{DAYS[6]:%Y-%m-%d},{value},A"
    path = _write(tmp_path, rows)
    with pytest.raises(BadValueError, match=r"non-finite value -?inf in column Close at line 8"):
        _panel(path)
    result = run_main(["fit", "--data.source", "csv", "--data.path", str(path), "--trainer.max_epochs", "1"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "non-finite value" in result.stderr
    assert not (tmp_path / "lightning_logs").exists()  # nothing written


def test_tickers_spelled_like_missing_values_are_tickers(tmp_path):
    names = ["NA", "NULL", "NAN", "N/A", "None"]
    path = _write(tmp_path, [row for name in names for row in _rows(name)])
    assert sorted(_panel(path).names) == sorted(names)
    empty = _write(tmp_path, [*_rows("A"), f"{DAYS[0]:%Y-%m-%d},5,"], name="empty.csv")
    with pytest.raises(SchemaError, match="empty ticker in column Name at line 42"):
        _panel(empty)


def test_two_rows_on_one_day_at_different_times_are_named_both(tmp_path):
    rows = _rows()
    rows.insert(3, f"{DAYS[2]:%Y-%m-%d} 16:00,12.5,A")  # line 5; the day's first row is line 4
    rows[2] = f"{DAYS[2]:%Y-%m-%d} 10:00,12,A"
    with pytest.raises(BadValueError, match=r"two rows for ticker A on 2020-01-03, at line 4 and line 5"):
        _panel(_write(tmp_path, rows))


def test_times_and_offsets_are_read_as_the_exchanges_local_day(tmp_path):
    # New York closes: -05:00 in winter, -04:00 after the switch to summer time (mixed offsets in one column);
    # an evening row in UTC would be the next day
    dates = [f"{d:%Y-%m-%d}T16:00:00{'-05:00' if k < 20 else '-04:00'}" for k, d in enumerate(DAYS)]
    panel = _panel(_write(tmp_path, _rows(dates=dates)))
    np.testing.assert_array_equal(panel.dates, DAYS.to_numpy().astype("datetime64[D]"))
    late = [f"{d:%Y-%m-%d} 23:30:00+01:00" for d in DAYS]
    np.testing.assert_array_equal(_panel(_write(tmp_path, _rows(dates=late), "late.csv")).dates, panel.dates)


def test_line_numbers_count_blank_lines_as_an_editor_does(tmp_path):
    rows = _rows()
    rows[1] = f"{DAYS[1]:%Y-%m-%d},abc,A"  # line 3 ...
    path = tmp_path / "blank.csv"
    path.write_text("Date,Close,Name\n" + rows[0] + "\n\n\n" + "\n".join(rows[1:]) + "\n")  # ... now line 5
    with pytest.raises(SchemaError, match="non-numeric value 'abc' in column Close at line 5"):
        _panel(path)


@pytest.mark.parametrize(
    ("pattern", "first"),
    [("%m/%d/%Y", "month/day/year"), ("%d/%m/%Y", "day/month/year"), ("%m/%d/%y", "month/day/year")],
)
def test_slash_dates_in_the_order_the_file_proves(tmp_path, caplog, pattern, first):
    dates = [f"{d:{pattern}}".lstrip("0") for d in DAYS]  # 1/2/2020 as spreadsheets write it
    with caplog.at_level("INFO"):
        panel = _panel(_write(tmp_path, _rows(dates=dates)))
    np.testing.assert_array_equal(panel.dates, DAYS.to_numpy().astype("datetime64[D]"))
    assert f"dates read as {first}" in caplog.text


def test_ambiguous_slash_dates_ask_for_the_pattern(tmp_path):
    days = pd.bdate_range("2020-01-01", "2020-01-12").append(pd.bdate_range("2020-02-01", "2020-02-12"))
    days = days.append(pd.bdate_range("2020-03-01", "2020-03-12")).append(pd.bdate_range("2020-04-01", "2020-04-12"))
    dates = [f"{d:%m/%d/%Y}" for d in days]  # every field 12 or below: month/day or day/month?
    path = _write(tmp_path, _rows(dates=dates))
    with pytest.raises(SchemaError, match=r"ambiguous.*pass date_format='%m/%d/%Y' \(month first\)"):
        _panel(path)
    panel = _panel(path, date_format="%d/%m/%Y")
    expected = np.sort(pd.to_datetime(dates, format="%d/%m/%Y").to_numpy().astype("datetime64[D]"))
    np.testing.assert_array_equal(panel.dates, expected)  # read as the user says: day first
    result = run_main(["fit", "--data.source", "csv", "--data.path", str(path)], tmp_path)
    assert result.returncode == 2 and "--data.date_format" in result.stderr.strip().splitlines()[-1]


def test_predictions_are_read_back_with_tickers_as_text(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "Name,origin_date,target_date,step,forecast\n0700,2020-01-01,2020-01-02,1,5.5\nNA,2020-01-01,2020-01-02,1,\n"
    )
    frame = read_predictions(path)
    assert list(frame["Name"]) == ["0700", "NA"]
    assert frame["forecast"].iloc[0] == 5.5 and np.isnan(frame["forecast"].iloc[1])


def test_spaces_utc_suffixes_and_hour_offsets_are_read_as_days(tmp_path):
    styles = [" {d:%Y-%m-%d} ", "{d:%Y-%m-%d} 20:00:00 UTC", "{d:%Y-%m-%d}T20-05:00", "{d:%Y-%m-%d}T16:00:00-04:00"]
    dates = [styles[k % len(styles)].format(d=d) for k, d in enumerate(DAYS)]
    rows = _rows(dates=dates)
    rows[5] = rows[5].replace(",A", ", A ")  # a ticker padded with spaces is the same ticker
    panel = _panel(_write(tmp_path, rows))
    assert list(panel.names) == ["A"]
    np.testing.assert_array_equal(panel.dates, DAYS.to_numpy().astype("datetime64[D]"))


def test_an_ambiguous_slash_file_with_an_empty_date_still_asks_for_the_pattern(tmp_path):
    rows = _rows(dates=[f"{d:%m/%d/%Y}" for d in pd.bdate_range("2020-01-01", "2020-01-12")])
    rows.insert(2, "  ,5,A")
    with pytest.raises(SchemaError, match=r"\(or date_format=\)"):  # from Python: the keyword
        _panel(_write(tmp_path, rows))
