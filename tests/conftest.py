"""Shared fixtures: the real DJIA data when present (else a clean skip), small synthetic panels."""

from pathlib import Path

import pandas as pd
import pytest

from forecast.data import synthetic_panel

DJIA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "djia"
    / "all_stocks_2006-01-01_to_2018-01-01.csv.gz"
)


@pytest.fixture(scope="session")
def djia_path() -> Path:
    if not DJIA.is_file():
        pytest.skip(f"real DJIA data not found at {DJIA} (it lives in ../shared/data/djia beside the checkout)")
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
