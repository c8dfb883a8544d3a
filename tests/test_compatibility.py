"""Checkpoints written by earlier versions keep working: ``tests/fixtures/main-82ccac3-*.ckpt`` were written by main
at 82ccac3 (a point and a quantile model, 2 epochs on 3 synthetic tickers), with the forecasts that version's
``predict --data.predict_set latest`` wrote for them (``*-latest.csv``)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import run_dir, run_main

FIXTURES = Path(__file__).parent / "fixtures"
BRIEF = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1"]
BRIEF += ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def _checkpoint(kind, tmp_path):
    (tmp_path / "old").mkdir()
    return shutil.copy(FIXTURES / f"main-82ccac3-{kind}.ckpt", tmp_path / "old" / "last.ckpt")  # reports go beside it


@pytest.mark.parametrize("kind", ["point", "quantile"])
def test_an_old_checkpoint_forecasts_what_it_forecast_then(kind, tmp_path):
    checkpoint = _checkpoint(kind, tmp_path)
    done = run_main(
        ["predict", "--ckpt_path", checkpoint, "--data.predict_set", "latest", "--output", "p.csv"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # a quantile model from before calibration says so, and forecasts as it did
    assert ("intervals are not calibrated" in done.stderr + done.stdout) == (kind == "quantile")
    then = pd.read_csv(FIXTURES / f"main-82ccac3-{kind}-latest.csv")
    now = pd.read_csv(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(now, then, check_exact=False, rtol=1e-6)

    import forecast  # from Python too, given the same prices as a DataFrame
    from forecast.data import synthetic_panel

    frame = forecast.load(checkpoint).predict(synthetic_panel(n_tickers=3, seed=0), at="latest")
    assert list(frame["Name"]) == list(then["Name"])
    assert frame["forecast"].to_numpy() == pytest.approx(then["forecast"].to_numpy(), rel=1e-6)


@pytest.mark.parametrize("kind", ["point", "quantile"])
def test_an_old_checkpoint_is_tested_and_warm_starts_a_new_run(kind, tmp_path):
    checkpoint = _checkpoint(kind, tmp_path)
    tested = run_main(["test", "--ckpt_path", checkpoint, *BRIEF], tmp_path)
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert (tmp_path / "old" / "test-last" / "test_metrics.json").is_file()
    warm = run_main(["fit", "--init_from", checkpoint, "--trainer.max_epochs", "1", "--test_after_fit", "false",
                     *BRIEF], tmp_path)  # fmt: skip
    assert warm.returncode == 0, warm.stderr[-2000:]
    new = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    old = torch.load(checkpoint, weights_only=True)
    assert new["forecast_init_from"] == str(Path(checkpoint).absolute())
    assert new["hyper_parameters"]["quantiles"] == old["hyper_parameters"]["quantiles"]
    assert new["datamodule_hyper_parameters"]["synthetic_tickers"] == 3  # the data it was trained on


def test_lightning_itself_loads_an_old_quantile_checkpoint():
    """``Forecaster.load_from_checkpoint`` (Lightning's own reader) builds the older second network the weights are
    for, and says the intervals are uncalibrated, as the command line and ``forecast.load`` do."""
    from forecast.model import Forecaster

    model = Forecaster.load_from_checkpoint(FIXTURES / "main-82ccac3-quantile.ckpt", map_location="cpu")
    assert model.hparams.intervals == "network" and model.interval_net is not None and model.prior is None
    assert not bool(model.calibration.calibrated) and (model.calibration.shifts == 0).all()
