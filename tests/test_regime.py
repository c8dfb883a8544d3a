"""The regime features and the model's anchor: hand cases, and no day after the row in a row's features."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.data.normalise import normalise_window
from forecast.data.panel import build_panel
from forecast.data.regime import regime_features
from forecast.model.anchor import anchor_offset


def _panel(closes: dict[str, list[float]]):
    rows = [
        {"Date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=i), "Name": name, "Close": c}
        for name, series in closes.items()
        for i, c in enumerate(series)
    ]
    return build_panel(pd.DataFrame(rows).sort_values(["Name", "Date"]), ["Close"], None, 1)


def test_regime_features_by_hand_over_three_days():
    a = [10.0, 11.0, 9.0, 12.0, 6.0]
    b = [5.0, 5.0, 5.5]
    features = regime_features(_panel({"A": a, "B": b}), days=3).double()
    # A, row 3: returns of the last 3 days log(11/10), log(9/11), log(12/9); peak of closes 11, 9, 12 is 12
    r = np.diff(np.log(a))
    vol = np.std(r[0:3], ddof=1) * math.sqrt(252)
    assert features[3, 0].item() == pytest.approx(math.log(vol / 0.2), rel=1e-5)
    assert features[3, 1].item() == pytest.approx(0.0, abs=1e-7)
    # row 4: returns r[1:4], closes 9, 12, 6: drawdown log(6/12)
    assert features[4, 0].item() == pytest.approx(math.log(np.std(r[1:4], ddof=1) * math.sqrt(252) / 0.2), rel=1e-5)
    assert features[4, 1].item() == pytest.approx(math.log(0.5), rel=1e-6)
    # a ticker's first rows: fewer than two returns give 0 (no borrowing from the next ticker or the future)
    assert features[0].tolist() == [0.0, 0.0] and features[1, 0].item() == 0.0
    # B starts at row 5: its own days only; row 6 (a flat day) has one return, row 7 two of them
    assert features[5].tolist() == [0.0, 0.0]
    rb = np.diff(np.log(b))
    assert features[7, 0].item() == pytest.approx(math.log(np.std(rb, ddof=1) * math.sqrt(252) / 0.2), rel=1e-5)


def test_a_rows_regime_does_not_depend_on_later_days():
    rng = np.random.default_rng(0)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300))))
    changed = closes[:200] + [c * 3 for c in closes[200:]]
    before = regime_features(_panel({"A": closes}), days=50)
    after = regime_features(_panel({"A": changed}), days=50)
    assert torch.equal(before[:200], after[:200]) and not torch.equal(before[200:], after[200:])


def test_anchor_offset_is_the_mean_return_path_from_the_last_value_in_normalised_units():
    base = torch.tensor([[[10.0, 12.0, 11.0, 13.0]], [[50.0, 49.0, 52.0, 51.0]]], dtype=torch.float64)
    x, loc, scale = normalise_window(base, "last_std", 0)
    batch = {"base_close": base[:, 0], "loc": loc, "scale": scale, "normalisation": "last_std", "x": x}
    mu = torch.tensor(0.01, dtype=torch.float64)
    offset = anchor_offset(batch, mu, horizon=3)  # (B, 1, H)
    for b, last in enumerate([13.0, 51.0]):
        std = float(np.std(base[b, 0].numpy()))
        expected = [last * (math.exp(0.01 * s) - 1) / std for s in (1, 2, 3)]
        assert offset[b, 0].tolist() == pytest.approx(expected, rel=1e-6)
    # log normalisation: the offset is μ s whatever the price
    x, loc, scale = normalise_window(base, "log", 0)
    batch |= {"x": x, "loc": loc, "scale": scale, "normalisation": "log"}
    assert anchor_offset(batch, mu, 3)[:, 0].flatten().tolist() == pytest.approx([0.01, 0.02, 0.03] * 2, rel=1e-5)
