"""Shared fixtures: the real DJIA data when present (else a clean skip), small synthetic panels, and one trained
checkpoint shared by every test module that needs a model."""

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import SMALL, run_dir, run_main

from forecast.data import synthetic_panel

DJIA_FILE = "all_stocks_2006-01-01_to_2018-01-01.csv.gz"
# FORECAST_TEST_DATA: a folder that holds the DJIA file (or the file itself); default ../shared/data/djia
_given = Path(os.environ.get("FORECAST_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "djia")
DJIA = _given / DJIA_FILE if _given.is_dir() else _given


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A config with ``torch_threads`` (configs/djia.yaml's is 1) sets torch's thread count for the whole process
    when a test builds ForecastCLI in it; a later in-process fit would then sum in another order than a subprocess
    and differ in the last bits (test_interrupt's resume check failed after a test_tune test did this)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# a non-default model and data layout: commands that read the checkpoint must rebuild both from it
CUSTOM = ["--model.lookback", "4", "--model.encoder_channels", "[3, 6]", "--data.base_len", "20", "--data.horizon", "5"]


@pytest.fixture(scope="session")
def djia_path() -> Path:
    if not DJIA.is_file():
        pytest.skip(
            f"real DJIA data not found at {DJIA} (it lives in ../shared/data/djia beside the checkout; "
            "FORECAST_TEST_DATA=FOLDER points the tests elsewhere)"
        )
    return DJIA


@pytest.fixture(scope="session")
def small_panel() -> pd.DataFrame:
    """Three synthetic tickers over 2014-2017 business days."""
    return synthetic_panel(n_tickers=3, start="2014-01-01", end="2017-12-29", seed=7)


@pytest.fixture
def small_csv(tmp_path, small_panel) -> Path:
    path = tmp_path / "prices.csv"
    small_panel.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """``last.ckpt`` of one brief fit (synthetic, 2 tickers, the CUSTOM layout: horizon 5); read-only for tests."""
    root = tmp_path_factory.mktemp("trained")
    result = run_main(["fit", *SMALL, *CUSTOM, "--trainer.max_epochs", "1", "--test_after_fit", "false"], root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir(root) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def batch():
    """16 validation windows of 2 synthetic tickers, as the DataModule gives them."""
    from forecast.data import StockDataModule

    dm = StockDataModule(source="synthetic", synthetic_tickers=2, batch_size=16)
    dm.setup("fit")
    return dm.datasets["val"].__getitems__(list(range(0, 160, 10)))
