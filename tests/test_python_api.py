"""forecast.load / ForecastModel.predict: the command line's numbers from a DataFrame, its errors, its rule."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_dir, run_main

import forecast
from forecast.checkpoint import CheckpointError, SettingConflictError
from forecast.data import NotEnoughDataError, SchemaError, synthetic_panel


def _cli(cwd, checkpoint, output, *args):
    done = run_main(["predict", "--ckpt_path", str(checkpoint), "--output", output, *args], cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_csv(cwd / output, parse_dates=["origin_date", "target_date"], dtype={"Name": str})


def _same(ours, theirs):
    assert list(ours.columns) == list(theirs.columns)
    assert ours["origin_date"].dtype == "datetime64[ns]" and ours["target_date"].dtype == "datetime64[ns]"
    assert len(ours) == len(theirs)
    for column in ("Name", "origin_date", "target_date", "step"):
        assert (ours[column].to_numpy() == theirs[column].to_numpy()).all(), column
    np.testing.assert_array_equal(ours["forecast"].round(6), theirs["forecast"])  # the file keeps 6 decimals


def test_a_dataframe_gives_the_command_lines_forecasts(trained, tmp_path):
    model = forecast.load(trained)
    assert model.horizon == 5 and model.quantiles is None and model.settings["model"]["lookback"] == 4
    prices = synthetic_panel(n_tickers=2)  # what the trained fixture was fitted on
    _same(model.predict(prices), _cli(tmp_path, trained, "test.csv"))
    _same(model.predict(prices, at="latest"), _cli(tmp_path, trained, "latest.csv", "--data.predict_set", "latest"))
    csv = tmp_path / "prices.csv"
    prices.to_csv(csv, index=False)
    _same(model.predict(csv), _cli(tmp_path, trained, "test.csv"))  # a path works as --data.path


def test_errors_are_the_command_lines(trained, tmp_path):
    (tmp_path / "not.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        forecast.load(tmp_path / "not.ckpt")
    model = forecast.load(trained)
    prices = synthetic_panel(n_tickers=2).rename(columns={"Close": "Price"})
    with pytest.raises(SchemaError, match="DataFrame: no 'Close' column; found columns: Date, Open, High, Low, Price"):
        model.predict(prices)
    with pytest.raises(SettingConflictError, match=r"data.horizon 10 \(the checkpoint has 5\)"):
        model.predict(synthetic_panel(n_tickers=2), horizon=10)
    with pytest.raises(NotEnoughDataError, match="no ticker has the 25 days one window needs"):
        model.predict(synthetic_panel(n_tickers=1).iloc[:20], at="latest")  # a ticker too short for one window
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.predict(synthetic_panel(n_tickers=2), horizn=5)


def test_best_and_last_find_the_newest_run(tmp_path):
    from helpers import SMALL

    done = run_main(["fit", *SMALL, "--trainer.max_epochs", "1", "--test_after_fit", "false"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert forecast.load("last", root=tmp_path).run_folder == run_dir(tmp_path)
    assert forecast.load("best", root=tmp_path).path.parent == run_dir(tmp_path) / "checkpoints"


def test_djia_from_python_equals_the_command_line(djia_path, tmp_path):
    quick = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    data = ["--data.source", "csv", "--data.path", str(djia_path)]
    root = Path(__file__).resolve().parents[1]  # configs/djia.yaml is the project's
    options = [*data, *quick, "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path)]
    fit = run_main(["fit", "--config", "configs/djia.yaml", *options], root)
    assert fit.returncode == 0, fit.stderr[-2000:]
    checkpoint = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    model = forecast.load(checkpoint)
    prices = pd.read_csv(djia_path)
    _same(model.predict(prices), _cli(tmp_path, checkpoint, "test.csv"))
    _same(model.predict(prices, at="latest"), _cli(tmp_path, checkpoint, "latest.csv", "--data.predict_set", "latest"))
    one_day = model.predict(prices, at="2017-06-30")
    assert len(one_day) == 31 * 10 and one_day["origin_date"].eq("2017-06-30").all()
    targets = sorted(one_day["target_date"].dt.strftime("%Y-%m-%d").unique())
    assert targets[:2] == ["2017-07-03", "2017-07-05"] and "2017-07-04" not in targets  # NYSE: Independence Day
