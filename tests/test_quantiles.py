"""Quantile forecasts: levels, non-crossing outputs, the pinball loss and interval metrics against numpy, the
naive-quantile baseline by hand, and the CLI's quantile columns and tables."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CUSTOM
from helpers import SMALL, run_dir, run_main
from scipy import stats

from forecast.data.baselines import naive_quantile_ratios
from forecast.data.panel import build_panel
from forecast.data.validate import clean_panel
from forecast.model import Forecaster
from forecast.model.quantiles import (
    IntervalMetrics,
    central_intervals,
    check_levels,
    interval_quantiles,
    level_name,
    pinball,
)

LEVELS = [0.1, 0.5, 0.9]


def test_levels_names_and_central_intervals():
    assert check_levels([0.1, 0.5, 0.9]) == [0.1, 0.5, 0.9]
    for bad in ([0.1, 0.9], [0.5, 0.1], [0.0, 0.5], [0.5, 0.5, 0.9], [0.5, 1.0]):
        with pytest.raises(ValueError, match=r"increasing levels in \(0, 1\) that include 0\.5"):
            check_levels(bad)
    assert [level_name(q) for q in (0.1, 0.05, 0.5, 0.975)] == ["q0.1", "q0.05", "q0.5", "q0.975"]
    assert central_intervals([0.05, 0.1, 0.5, 0.9, 0.95]) == [(0, 4, 90), (1, 3, 80)]
    assert central_intervals([0.1, 0.25, 0.5, 0.9]) == [(0, 3, 80)]  # 0.25 has no 0.75: no interval


def test_interval_quantiles_never_cross_and_never_move_the_median():
    median = torch.randn(64, 2, 1, 7, requires_grad=True)  # (B, K, 1, H)
    raw = (torch.randn(64, 2, 4, 7) * 3).requires_grad_()  # the other 4 levels, 2 below and 2 above the median
    out = interval_quantiles(median, raw, median_index=2)
    assert out.shape == (64, 2, 5, 7) and (out.diff(dim=-2) > 0).all()
    torch.testing.assert_close(out[:, :, 2:3], median)
    # the other levels' losses reach their own outputs only: the median gets no gradient from them
    torch.cat([out[:, :, :2], out[:, :, 3:]], dim=2).sum().backward()
    assert median.grad is None or median.grad.abs().sum() == 0
    assert raw.grad.abs().sum() > 0


def test_pinball_hand_computed():
    # target 10; forecasts 8, 10, 13 at levels 0.1, 0.5, 0.9: errors e = 2, 0, -3
    # max(0.1 * 2, -0.9 * 2) = 0.2; 0; max(0.9 * -3, -0.1 * -3) = 0.3
    loss = pinball(torch.tensor([[[8.0], [10.0], [13.0]]]), torch.tensor([[[10.0]]]), torch.tensor(LEVELS))
    torch.testing.assert_close(loss.flatten(), torch.tensor([0.2, 0.0, 0.3]))


def test_interval_metrics_against_numpy():
    rng = np.random.default_rng(0)
    n, h = 200, 4
    target = rng.normal(100, 5, size=(n, h))
    centre = target + rng.normal(0, 3, size=(n, h))
    q = np.stack([centre - 4, centre, centre + 4], axis=1)  # (N, Q, H)
    naive = np.stack(
        [target.mean() * 0.95 + 0 * target, target.mean() + 0 * target, target.mean() * 1.05 + 0 * target], 1
    )
    metric = IntervalMetrics(LEVELS, h)
    for part in np.array_split(np.arange(n), 3):  # in batches, as the loop feeds it
        metric.update(torch.from_numpy(q[part]), torch.from_numpy(target[part]), torch.from_numpy(naive[part]))
    got = metric.summary()

    def np_pinball(pred):
        e = target[:, None, :] - pred
        tau = np.array(LEVELS)[None, :, None]
        return np.maximum(tau * e, (tau - 1) * e).mean(axis=(0, 2))  # (Q,)

    np.testing.assert_allclose(got["pinball"].numpy(), np_pinball(q), rtol=1e-12)
    np.testing.assert_allclose(got["naive_pinball"].numpy(), np_pinball(naive), rtol=1e-12)
    assert float(got["scaled_pinball"]) == pytest.approx(np_pinball(q).mean() / np_pinball(naive).mean(), rel=1e-12)
    inside = (q[:, 0] <= target) & (target <= q[:, 2])
    np.testing.assert_allclose(got["coverage"].numpy(), [inside.mean()], rtol=1e-12)
    np.testing.assert_allclose(got["coverage_step"].numpy(), inside.mean(axis=0)[None], rtol=1e-12)
    np.testing.assert_allclose(got["width"].numpy(), [8.0], rtol=1e-12)


def test_naive_quantile_ratios_by_hand():
    # A doubles every day; B is flat then jumps: pairs with their later day on or before 2020-01-03 only
    dates = pd.bdate_range("2020-01-01", periods=5)  # Wed 1, Thu 2, Fri 3, Mon 6, Tue 7
    frame = pd.concat(
        [
            pd.DataFrame({"Date": dates, "Close": [1.0, 2.0, 4.0, 8.0, 16.0], "Name": "A"}),
            pd.DataFrame({"Date": dates, "Close": [10.0, 10.0, 10.0, 30.0, 30.0], "Name": "B"}),
        ]
    )
    panel = build_panel(clean_panel(frame, ["Close"], origin="hand"), ["Close"], None, min_length=2)
    ratios = naive_quantile_ratios(panel, "2020-01-03", [0.5], horizon=2)
    # step 1: A 2, 2; B 1, 1 → median of [2, 2, 1, 1] = 1.5. step 2: A 4; B 1 → median 2.5
    np.testing.assert_allclose(ratios, [[1.5, 2.5]])


def test_a_median_alone_is_the_mae_model_and_levels_give_ordered_dollars(batch):
    torch.manual_seed(0)
    point = Forecaster(loss="mae")
    torch.manual_seed(0)
    median = Forecaster(quantiles=[0.5])
    torch.testing.assert_close(median.training_loss(batch), point.training_loss(batch))  # 2 x pinball(0.5) = MAE
    torch.manual_seed(0)
    model = Forecaster(quantiles=LEVELS, members=2, encoder_channels=(4, 8), decoder_channels=(4,))
    dollars = model.quantile_dollars(batch)
    assert dollars.shape == (batch["x"].shape[0], 3, 10) and (dollars.diff(dim=1) > 0).all()
    torch.testing.assert_close(model.forecast_dollars(batch), dollars[:, 1])
    with pytest.raises(ValueError, match="quantiles need loss mae"):
        Forecaster(quantiles=LEVELS, loss="mse")


@pytest.mark.parametrize("intervals", ["vol_prior", "network"])
def test_the_median_of_a_quantile_model_trains_as_the_point_model(batch, intervals):
    """Same seed: the same initial network, the same median; the point path's gradients are the point model's
    scaled by the median's share of the loss (1/3 of three levels), so Adam takes the same steps."""
    torch.manual_seed(0)
    point = Forecaster()
    torch.manual_seed(0)
    model = Forecaster(quantiles=LEVELS, intervals=intervals)
    torch.testing.assert_close(model.forecast_dollars(batch), point.forecast_dollars(batch))
    point.training_loss(batch).backward()
    model.training_loss(batch).backward()
    for (name, p), q in zip(
        point.named_parameters(), [dict(model.named_parameters())[n] for n, _ in point.named_parameters()], strict=True
    ):
        torch.testing.assert_close(3 * q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)  # float32 sums
    others = model.interval_net if intervals == "network" else model.prior
    assert all(p.grad.abs().sum() > 0 for p in others.parameters())


def test_the_volatility_prior_starts_as_the_random_walk_of_the_base_volatility(batch):
    """At the start (g = 0) level τ at step s is the median + z_τ σ √s, σ the std of the base's daily changes in
    normalised units; a learned g scales the steps between neighbouring levels by exp(g)."""
    levels = [0.05, 0.1, 0.5, 0.9]
    torch.manual_seed(0)
    model = Forecaster(quantiles=levels)
    out = model(batch["x"]).double()  # (B, Q, H)
    close = batch["x"][:, 0].double()
    sigma = torch.from_numpy(np.std(np.diff(close.numpy(), axis=1), axis=1, ddof=1))
    z = torch.from_numpy(stats.norm.ppf(levels))
    expected = out[:, 2:3] + z[None, :, None] * sigma[:, None, None] * torch.arange(1, 11).double().sqrt()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        model.prior.scale.bias.copy_(torch.tensor([0.0, math.log(2.0), math.log(3.0)]))  # (0.05→0.1, 0.1→0.5, 0.5→0.9)
    scaled = model(batch["x"]).double()
    gaps = out[:, 2:3] - out  # distances from the median at g = 0
    torch.testing.assert_close(scaled[:, 3] - scaled[:, 2], 3 * gaps[:, 3].abs(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled[:, 2] - scaled[:, 1], 2 * gaps[:, 1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled[:, 1] - scaled[:, 0], gaps[:, 0] - gaps[:, 1], rtol=1e-5, atol=1e-5)


def test_fit_test_predict_with_quantiles(tmp_path):
    fit = run_main(
        ["fit", *SMALL, *CUSTOM, "--trainer.max_epochs", "1", "--model.quantiles", "[0.1, 0.5, 0.9]"], tmp_path
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "quantile forecasts" in fit.stdout and "| 80% |" in fit.stdout
    report = json.loads((run_dir(tmp_path) / "test_metrics.json").read_text())["intervals"]
    assert report["levels"] == LEVELS and len(report["pinball"]) == 3 and 0 <= report["coverage"][0] <= 1
    assert report["scaled_pinball"] > 0 and len(report["coverage_step"][0]) == 5
    done = run_main(["predict", "--ckpt_path", "last", "--output", "f.csv", "--trainer.accelerator", "cpu"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "f.csv")
    assert list(frame.columns) == ["Name", "origin_date", "target_date", "step", "forecast", "q0.1", "q0.5", "q0.9"]
    assert (frame["q0.1"] < frame["q0.5"]).all() and (frame["q0.5"] < frame["q0.9"]).all()
    np.testing.assert_allclose(frame["forecast"], frame["q0.5"])


def test_the_volatility_prior_of_a_two_day_base_is_finite():
    """One daily change has no n − 1 standard deviation: the prior takes the change's own size instead of NaN."""
    model = Forecaster(quantiles=LEVELS, base_len=2, horizon=1, encoder_channels=(3,), decoder_channels=(2,))
    x = torch.tensor([[[0.0, 1.0]], [[0.0, -2.0]]])
    out = model(x)
    assert torch.isfinite(out).all()
    z = stats.norm.ppf(0.9)
    expected = torch.tensor([z * 1.0, z * 2.0], dtype=torch.float32)  # z_0.9 times each base's one change
    torch.testing.assert_close(out[:, 2, 0] - out[:, 1, 0], expected, rtol=1e-5, atol=1e-5)
