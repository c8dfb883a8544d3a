"""Forecasting from a checkpoint alone, the prediction file format, and 2-process DDP on CPU (gloo)."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CUSTOM
from helpers import SMALL, fit_briefly, run_dir, run_main, run_subprocess


def test_predict_from_checkpoint_alone_writes_protocol_rows(trained, tmp_path):
    out = tmp_path / "forecasts.csv"
    result = run_main(
        ["predict", "--ckpt_path", str(trained), "--output", str(out), "--trainer.accelerator", "cpu"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["Name", "origin_date", "target_date", "step", "forecast"]
    assert sorted(frame["step"].unique()) == [1, 2, 3, 4, 5]  # horizon 5 restored from the checkpoint
    assert frame["Name"].nunique() == 2  # synthetic_tickers 2 restored from the checkpoint
    assert frame["origin_date"].min() >= "2016-12-01" and frame["target_date"].min() >= "2017-01-02"
    assert frame.groupby(["Name", "origin_date"]).size().eq(5).all()
    assert (frame["target_date"] > frame["origin_date"]).all()
    assert (frame["forecast"] > 0).all()
    assert f"wrote {len(frame):,} forecast rows for 2 tickers" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"forecasts.csv"}  # no temporary files, no run folder


def test_predict_latest_forecasts_next_trading_days(trained, tmp_path):
    out = tmp_path / "latest.csv"
    args = ["predict", "--ckpt_path", str(trained), "--output", str(out), "--data.predict_set", "latest"]
    result = run_main([*args, "--trainer.accelerator", "cpu"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(out)
    assert len(frame) == 2 * 5
    assert set(frame["origin_date"]) == {"2017-12-29"}
    assert frame["target_date"].tolist()[:5] == [
        "2018-01-02",
        "2018-01-03",
        "2018-01-04",
        "2018-01-05",
        "2018-01-08",
    ]  # NYSE days


def test_ddp_two_processes_fit_then_predict_equals_one_process(tmp_path):
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2"]
    fit = run_subprocess(["fit", *SMALL, *ddp, "--trainer.max_epochs", "1", "--test_after_fit", "false"], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]  # one run, whatever the ranks
    common = ["predict", "--ckpt_path", str(ckpt), "--trainer.accelerator", "cpu"]
    two = run_subprocess([*common, *ddp, "--output", "two.csv"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_main([*common, "--trainer.devices", "1", "--output", "one.csv"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = pd.read_csv(tmp_path / "two.csv"), pd.read_csv(tmp_path / "one.csv")
    assert len(a) == len(b) > 0
    assert not a.duplicated(["Name", "origin_date", "step"]).any()
    pd.testing.assert_frame_equal(a.drop(columns="forecast"), b.drop(columns="forecast"))
    # float32 sums round differently with each process's batch: differences of a few float32 epsilons (1.2e-7)
    # of the price (1.39e-4 dollars at $658 was seen on one machine), so a relative bound of 1e-5 (about 80
    # epsilons), never an absolute one that high-priced tickers exceed
    np.testing.assert_allclose(a["forecast"], b["forecast"], rtol=1e-5, atol=0)


def test_predict_from_a_checkpoint_trained_in_python(tmp_path):
    """A checkpoint written by plain Lightning code (tuples in its hyperparameters) works with the CLI too."""
    from forecast.data import StockDataModule
    from forecast.model import Forecaster

    dm = StockDataModule(source="synthetic", synthetic_tickers=2, channels=("Close",), horizon=4)
    trainer = fit_briefly(Forecaster(horizon=4, encoder_channels=(3, 6)), dm, tmp_path)
    trainer.save_checkpoint(tmp_path / "python.ckpt")
    result = run_main(
        ["predict", "--ckpt_path", "python.ckpt", "--output", "out.csv", "--trainer.accelerator", "cpu"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(pd.read_csv(tmp_path / "out.csv")["step"].unique()) == [1, 2, 3, 4]


def test_custom_layout_is_what_the_trained_fixture_holds(trained):
    hparams = torch.load(trained, weights_only=True)["hyper_parameters"]
    assert CUSTOM[CUSTOM.index("--model.lookback") + 1] == str(hparams["lookback"])


def test_forecasts_that_are_not_finite_are_one_error_and_nothing_written():
    from forecast.callbacks.prediction_writer import prediction_frame
    from forecast.data import StockDataModule
    from forecast.errors import UserError

    dm = StockDataModule(source="synthetic", synthetic_tickers=2)
    dm.setup("fit")
    dataset = dm.datasets["val"]
    forecast = np.ones((3, dataset.horizon))
    assert len(prediction_frame(dataset, np.arange(3), forecast)) == 3 * dataset.horizon
    forecast[1, 4] = np.nan
    with pytest.raises(UserError, match=r"1 of 3 windows have forecasts that are not finite \(first: SYN0"):
        prediction_frame(dataset, np.arange(3), forecast)
