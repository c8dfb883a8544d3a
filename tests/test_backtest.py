"""``forecast backtest``: fold dates, scoring against hand-computed numbers and against the test loop, the
report, resuming, and bad options failing in one line before any training."""

import json
import math
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import CUSTOM
from helpers import SMALL, run_dir, run_main
from scipy import stats

from forecast.backtest.dm import diebold_mariano
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.backtest.scoring import read_predictions, score_fold
from forecast.data import StockDataModule
from forecast.data.panel import build_panel
from forecast.data.validate import clean_panel


def test_fold_dates_follow_the_protocol():
    fold = FoldDates(2017)  # exactly the DJIA-2017-h10 protocol's splits
    assert (fold.train_end, fold.val_end, fold.test_end) == ("2015-12-31", "2016-12-31", "2017-12-31")
    assert FoldDates(2013).arguments() == [
        "--data.train_end", "2011-12-31", "--data.val_end", "2012-12-31", "--data.test_end", "2013-12-31"
    ]  # fmt: skip
    search = FoldDates(2016, validation_only=True)  # 2016 is the validation year; no test split at all
    assert (search.train_end, search.val_end, search.test_end) == ("2015-12-31", "2016-12-31", None)


def _linear_panel():
    """A: close 100 + row (business days 2019-12-20 .. 2021-01-08); B: close 200 + 2 * row."""
    dates = pd.bdate_range("2019-12-20", "2021-01-08")
    rows = np.arange(len(dates), dtype=float)
    frame = pd.concat(
        [
            pd.DataFrame({"Date": dates, "Close": 100 + rows, "Name": "A"}),
            pd.DataFrame({"Date": dates, "Close": 200 + 2 * rows, "Name": "B"}),
        ]
    )
    return build_panel(clean_panel(frame, ["Close"], origin="linear"), ["Close"], None, min_length=5), dates


def _predictions(panel, dates, forecast_of):
    """Test windows of 2021 (base 3, horizon 2): first target day after 2020-12-31, last on or before 2021-12-31."""
    rows = []
    in_2021 = np.flatnonzero(dates > "2020-12-31")  # 2021-01-01 .. 2021-01-08: 6 days, origins before the 1st..5th
    for ticker, k in (("A", 0), ("B", 1)):
        for first_target in in_2021[:-1]:
            origin = first_target - 1
            last = float(panel.close[panel.offsets[k] + origin])
            for step in (1, 2):
                rows.append(
                    {
                        "Name": ticker,
                        "origin_date": str(dates[origin].date()),
                        "target_date": str(dates[origin + step].date()),
                        "step": step,
                        "forecast": forecast_of(ticker, origin, last, step),
                    }
                )
    return pd.DataFrame(rows)


def model_forecast(ticker, origin, last, step):
    # A: last + k * step with k = 0, 0.5, 1 by origin (errors (1 - k) * step); B: naive (its errors 2 * step)
    return last + (origin % 3) * 0.5 * step if ticker == "A" else last


def test_scores_hand_computed():
    panel, dates = _linear_panel()
    predictions = _predictions(panel, dates, model_forecast)
    score = score_fold(panel, predictions, FoldDates(2021), base_len=3, horizon=2)
    assert score.windows == 10
    # naive errors: A 1, 2 per step; B 2, 4: MAE (1.5 + 3) / 2 = 2.25
    assert score.mae["naive"] == pytest.approx(2.25)
    # the series are straight lines: drift is exact
    assert score.mae["drift"] == pytest.approx(0.0, abs=1e-12)
    in_2021 = np.flatnonzero(dates > "2020-12-31")[:-1] - 1  # origins
    k = (in_2021 % 3) * 0.5
    model_a = np.mean([(1 - ki) * s for ki in k for s in (1, 2)])
    assert score.mae["model"] == pytest.approx((model_a + 3.0) / 2)
    assert score.rel_mae["model"] == pytest.approx(score.mae["model"] / 2.25)
    # mean daily log-return over every day through the validation end (2020-12-31: rows 0 .. n), telescoping
    # per ticker: the baselines learn from what the model's checkpoint choice sees
    n = int((dates <= "2020-12-31").sum()) - 1
    mu = (math.log((100 + n) / 100) + math.log((200 + 2 * n) / 200)) / (2 * n)
    errors = [
        abs(base + slope * (o + s) - (base + slope * o) * math.exp(mu * s))
        for base, slope in ((100, 1), (200, 2))
        for o in in_2021
        for s in (1, 2)
    ]
    assert score.mae["mean_return"] == pytest.approx(np.mean(errors), rel=1e-12)
    # DM differential per origin date: mean over tickers of (model - naive) mean-over-steps error: A -1.5 k, B 0
    expected = pd.Series(-0.75 * k, index=dates[in_2021].values.astype("datetime64[D]"))
    np.testing.assert_allclose(score.differential["model"].to_numpy(), expected.to_numpy(), atol=1e-12)
    assert score.dm["model"].stat == pytest.approx(diebold_mariano(expected.to_numpy(), 2).stat)
    # the best baseline is drift (exact): the model's differential against it is its own error, A's (1 - k) * 1.5
    # averaged with B's 3 per date
    assert score.best == "drift"
    against_best = (0.75 * (1 - k) + 1.5) - 0.0
    assert score.dm_best.stat == pytest.approx(diebold_mariano(against_best, 2).stat, rel=1e-12)
    assert score.dm_best.mean == pytest.approx(against_best.mean(), rel=1e-12)
    assert score.signal is None  # two tickers: no cross-section to rank


def test_quantile_columns_are_scored_for_coverage_and_pinball():
    from forecast.data.baselines import naive_quantile_ratios

    panel, dates = _linear_panel()
    predictions = _predictions(panel, dates, model_forecast)
    predictions = predictions.assign(
        **{"q0.1": predictions["forecast"] - 1, "q0.5": predictions["forecast"], "q0.9": predictions["forecast"] + 1}
    )
    score = score_fold(panel, predictions, FoldDates(2021), base_len=3, horizon=2)
    origins = np.flatnonzero(dates > "2020-12-31")[:-1] - 1
    truth, forecast, last = [], [], []
    for base, slope in ((100, 1), (200, 2)):
        for o in origins:
            for s in (1, 2):
                truth.append(base + slope * (o + s))
                forecast.append(model_forecast("A" if base == 100 else "B", o, base + slope * o, s))
                last.append(base + slope * o)
    truth, forecast, last = map(np.asarray, (truth, forecast, last))
    # origins 269 .. 273: k = 1, 0, 0.5, 1, 0. A's errors (1 - k) * step lie within the +-1 band but for k = 0 at
    # step 2 (8 of A's 10 steps); B's errors (2, 4) never: 8 of 20
    intervals = score.intervals.metrics
    assert intervals["coverage_80"] == pytest.approx(np.mean(np.abs(truth - forecast) <= 1))
    assert intervals["coverage_80"] == pytest.approx(8 / 20)
    assert intervals["width_80"] == pytest.approx(2.0)
    ratios = naive_quantile_ratios(panel, "2020-12-31", [0.1, 0.5, 0.9], 2)  # learned through the validation end
    steps = np.tile([0, 1], len(truth) // 2)

    def mean_pinball(quantiles):  # (N, 3) dollars
        e = truth[:, None] - quantiles
        tau = np.array([0.1, 0.5, 0.9])
        return np.maximum(tau * e, (tau - 1) * e).mean()

    model = mean_pinball(np.stack([forecast - 1, forecast, forecast + 1], axis=1))
    naive = mean_pinball(last[:, None] * ratios[:, steps].T)
    assert intervals["scaled_pinball"] == pytest.approx(model / naive, rel=1e-12)
    assert intervals["mean_pinball"] == pytest.approx(model, rel=1e-12)
    assert intervals["naive_quantile_pinball"] == pytest.approx(naive, rel=1e-12)
    # the volatility-scaled baseline: c * exp(mu s + z sigma sqrt(s)), sigma the std (n - 1) of the base's two log
    # returns log((c - d) / (c - 2d)), log(c / (c - d)) with d the ticker's daily slope
    n = int((dates <= "2020-12-31").sum()) - 1
    mu = (math.log((100 + n) / 100) + math.log((200 + 2 * n) / 200)) / (2 * n)
    slope = np.where(np.arange(len(last)) < len(last) // 2, 1.0, 2.0)
    returns = np.stack([np.log((last - slope) / (last - 2 * slope)), np.log(last / (last - slope))], axis=1)
    sigma = returns.std(axis=1, ddof=1)
    z = stats.norm.ppf([0.1, 0.5, 0.9])
    step = steps + 1
    vol = last[:, None] * np.exp(mu * step[:, None] + z * sigma[:, None] * np.sqrt(step[:, None]))
    assert intervals["vol_scaled_pinball"] == pytest.approx(mean_pinball(vol), rel=1e-10)
    # the GARCH(1,1) baseline (its own tests: tests/test_garch.py) is the third candidate for the bar
    candidates = {"naive_quantile": naive, "vol_scaled": mean_pinball(vol)}
    if "garch" in score.intervals.skipped:  # without the arch package: skipped, saying why
        assert "arch package is not installed" in score.intervals.skipped["garch"]
    else:
        candidates["garch"] = intervals["garch_pinball"]
    assert score.intervals.best == min(candidates, key=candidates.get)
    assert set(score.intervals.differential) == set(candidates)
    best = min(candidates.values())
    assert intervals["scaled_pinball_best"] == pytest.approx(model / best, rel=1e-10)
    assert score.intervals.dm_best.mean == pytest.approx(model - best, rel=1e-10)  # same windows each date


def test_a_two_day_base_has_no_vol_scaled_baseline_and_scores_against_the_others():
    panel, dates = _linear_panel()
    predictions = _predictions(panel, dates, model_forecast)
    predictions = predictions.assign(
        **{"q0.1": predictions["forecast"] - 1, "q0.5": predictions["forecast"], "q0.9": predictions["forecast"] + 1}
    )
    score = score_fold(panel, predictions, FoldDates(2021), base_len=2, horizon=2)  # one return: no sigma
    assert set(score.intervals.differential) == {"naive_quantile", "garch"} - set(score.intervals.skipped)
    assert score.intervals.best in score.intervals.differential
    assert math.isnan(score.intervals.metrics["vol_scaled_pinball"])
    assert math.isfinite(score.intervals.dm_best.p)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.drop(index=3), "windows in the file"),
        (lambda f: f.assign(target_date=f["target_date"].where(f.index != 0, "2021-01-03")), "target dates"),
        (lambda f: f.assign(origin_date=f["origin_date"].where(f.index != 0, "1999-01-01")), "no day 1999-01-01"),
        (lambda f: f.assign(Name=f["Name"].where(f.index != 0, "ZZZ")), "ZZZ has no day"),
        (lambda f: f.assign(step=f["step"].where(f.index != 0, 2)), "each step 1 .. 2 exactly once"),
        (lambda f: pd.concat([f, f.iloc[:2]], ignore_index=True), "windows in the file"),
    ],
)
def test_a_predictions_file_that_is_not_the_folds_test_split_is_an_error(damage, message):
    panel, dates = _linear_panel()
    predictions = damage(_predictions(panel, dates, model_forecast))
    with pytest.raises(BacktestError, match=message):
        score_fold(panel, predictions, FoldDates(2021), base_len=3, horizon=2)


def test_scorer_agrees_with_the_test_loop(trained, tmp_path):
    """The scorer reads only the predictions file and the data; Lightning's test loop scores the tensors."""
    (tmp_path / "m").mkdir()
    checkpoint = shutil.copy(trained, tmp_path / "m" / "last.ckpt")  # test writes its report beside it
    dates = FoldDates(2016).arguments()
    small = [*SMALL, "--trainer.limit_test_batches", "1.0", "--trainer.limit_predict_batches", "1.0"]
    predicted = run_main(
        ["predict", *small, *dates, "--ckpt_path", checkpoint, "--data.predict_set", "test", "--output", "p.csv"],
        tmp_path,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    tested = run_main(["test", *small, *dates, "--ckpt_path", checkpoint], tmp_path)
    assert tested.returncode == 0, tested.stderr[-2000:]
    reference = json.loads((tmp_path / "m" / "test-last" / "test_metrics.json").read_text())
    panel = StockDataModule(source="synthetic", synthetic_tickers=2).load_panel()
    score = score_fold(panel, pd.read_csv(tmp_path / "p.csv"), FoldDates(2016), base_len=20, horizon=5)
    assert score.mae["naive"] == pytest.approx(reference["naive"]["mae"], rel=1e-9)
    assert score.mae["drift"] == pytest.approx(reference["drift"]["mae"], rel=1e-9)
    assert score.mae["model"] == pytest.approx(reference["model"]["mae"], rel=1e-5)  # the file keeps 6 decimals


BRIEF = [
    "--data.source", "synthetic", "--data.synthetic_tickers", "2", "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", "--trainer.enable_model_summary",
    "false", "--trainer.accelerator", "cpu", "--figures.windows", "0", *CUSTOM,
]  # fmt: skip


def test_backtest_end_to_end_reruns_and_resumes(tmp_path):
    args = ["backtest", "--years", "2016", "2017", "--seeds", "0", "--jobs", "2", "--out", "bt", *BRIEF]
    first = run_main(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "bt"
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["2016_seed0.csv", "2017_seed0.csv"]
    assert {"backtest.json", "backtest.md", "backtest.png"} <= {p.name for p in out.iterdir()}
    result = json.loads((out / "backtest.json").read_text())
    fold = result["folds"][0]
    assert {"year", "seed", "mae", "rel_mae", "naive_mae", "dm_stat", "dm_p", "best_epoch", "seconds"} <= set(fold)
    assert fold["rel_mae"] == pytest.approx(fold["mae"] / fold["naive_mae"])
    summary = result["summary"]
    assert set(summary["years"]) == {"2016", "2017"}
    assert {"rel_mae_mean", "dm_stat", "dm_p"} <= set(summary["pooled"]["model"])
    predictions = pd.read_csv(out / "predictions" / "2017_seed0.csv")
    assert list(predictions.columns) == ["Name", "origin_date", "target_date", "step", "forecast"]
    assert predictions["target_date"].str[:4].eq("2017").all() and predictions["origin_date"].min() < "2017"
    # each fold is a plain command a user can rerun: its fit, run by hand in another root, scores the same
    fit = shlex.split((out / "runs" / "2017_seed0" / "commands.sh").read_text().splitlines()[0])
    assert fit[:4] == ["python", "-m", "forecast", "fit"] and "2017-12-31" in fit
    fit[fit.index("--trainer.default_root_dir") + 1] = str(tmp_path / "by_hand")
    assert run_main(fit[3:], tmp_path).returncode == 0
    by_hand = json.loads((run_dir(tmp_path / "by_hand") / "fit_summary.json").read_text())
    of_2017 = next(f for f in result["folds"] if f["year"] == 2017)
    assert by_hand["best_val_rel_mae"] == pytest.approx(of_2017["best_val_rel_mae"], rel=1e-9)
    assert "2017" in first.stdout and "pooled" in first.stdout

    again = run_main(args, tmp_path)  # everything finished: nothing runs, the same numbers
    assert again.returncode == 0 and "2 finished earlier" in again.stdout
    assert json.loads((out / "backtest.json").read_text())["summary"] == summary

    # a fold killed after its fit's last checkpoint: it resumes from last.ckpt and ends where it would have
    (out / "predictions" / "2017_seed0.csv").unlink()
    (run_dir(out / "runs" / "2017_seed0") / "fit_summary.json").unlink()
    resumed = run_main(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fold_json = json.loads((out / "runs" / "2017_seed0" / "fold.json").read_text())
    last = run_dir(out / "runs" / "2017_seed0") / "checkpoints" / "last.ckpt"
    assert fold_json["commands"][-2].endswith(f"--ckpt_path {last}")  # the resumed fit
    assert json.loads((out / "backtest.json").read_text())["summary"] == summary

    # a folder written before fold records held scores (its fold.json: seconds and commands): still finished
    for fold_json in (out / "runs").glob("*/fold.json"):
        record = json.loads(fold_json.read_text())
        fold_json.write_text(json.dumps({"seconds": record["seconds"], "commands": record["commands"]}))
    older = run_main(args, tmp_path)
    assert older.returncode == 0 and "2 finished earlier" in older.stdout
    assert json.loads((out / "backtest.json").read_text())["summary"] == summary

    other = run_main([*args, "--model.init_lam", "0.5"], tmp_path)  # other settings, same folder: refused
    assert other.returncode == 2
    assert "holds a backtest with other settings (model.init_lam: 0.01 there, 0.5 now)" in other.stderr


def test_seed_ensemble_signal_and_score_only(tmp_path):
    brief = [*BRIEF]
    brief[brief.index("--data.synthetic_tickers") + 1] = "4"  # a cross-section to rank
    args = ["backtest", "--years", "2016", "2017", "--seeds", "0", "1", "--jobs", "2", "--out", "bt", *brief]
    done = run_main(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "bt"
    # the seeds' mean forecast, written as a predictions file of its own
    seeds = [read_predictions(out / "predictions" / f"2017_seed{s}.csv") for s in (0, 1)]
    ensemble = read_predictions(out / "predictions" / "2017_ensemble.csv")
    assert list(ensemble.columns) == list(seeds[0].columns)
    np.testing.assert_allclose(ensemble["forecast"], (seeds[0]["forecast"] + seeds[1]["forecast"]) / 2, atol=1e-6)
    result = json.loads((out / "backtest.json").read_text())
    year = result["summary"]["years"]["2017"]
    assert year["best_baseline"] in ("naive", "drift", "mean_return")
    best_mae = year["naive_mae"] * (1.0 if year["best_baseline"] == "naive" else year[year["best_baseline"]]["rel_mae"])
    folds = [f for f in result["folds"] if f["year"] == 2017]
    assert year["model"]["rel_mae_vs_best"] == pytest.approx(np.mean([f["mae"] / best_mae for f in folds]))
    assert year["ensemble"]["rel_mae_vs_best"] == pytest.approx(year["ensemble"]["mae_mean"] / best_mae)
    assert {"dm_stat", "dm_p", "dates", "dm_estimator"} <= set(year["model"]["vs_best"])
    signal = year["signal"]["model"]
    assert signal["dates"] > 0 and -1 <= signal["ic_mean"] <= 1 and len(signal["ic_step"]) == 5
    assert {"annual_return_pct", "volatility_pct", "sharpe", "max_drawdown_pct"} <= set(signal)
    # where the edge comes from: per ticker the seeds' mean MAE against the best baseline's, the share won
    tickers = year["model"]["tickers"]
    assert sorted(t["ticker"] for t in tickers) == sorted(seeds[0]["Name"].unique())
    assert year["model"]["share_beating_best"] == pytest.approx(np.mean([t["mae"] < t["best_mae"] for t in tickers]))
    one = tickers[0]["ticker"]
    per_seed = [f for f in result["folds"] if f["year"] == 2017]
    assert all(0 <= f["share_beating_best"] <= 1 and f["mase"] > 0 for f in per_seed)
    windows = sum(np.asarray(p["Name"] == one).sum() for p in seeds[:1]) // 5
    assert tickers[0]["windows"] == windows
    assert "## Where the edge comes from" in (out / "backtest.md").read_text()
    assert result["summary"]["pooled"]["model"]["share_beating_best_mean"] == pytest.approx(
        np.mean([result["summary"]["years"][y]["model"]["share_beating_best"] for y in ("2016", "2017")])
    )
    assert signal["net_bps"] == pytest.approx(signal["long_short_bps"] - 5.0 * signal["turnover"])
    assert set(result["summary"]["pooled"]["signal"]) == {"model", "ensemble"}
    report = (out / "backtest.md").read_text()
    assert report.index("## The model vs the best simple baseline") < report.index("## Every forecaster against naive")
    assert "## Signal: is it worth acting on?" in report

    # from Python: the same results as DataFrames
    import forecast

    results = forecast.read_backtest(out)
    assert len(results.folds) == 4 and set(results.years["forecaster"]) >= {"model", "ensemble", "mean_return"}
    model_2017 = results.years.query("year == 2017 and forecaster == 'model'").iloc[0]
    assert model_2017["dm_p_vs_best"] == year["model"]["vs_best"]["dm_p"]
    assert set(results.signal["year"]) == {"2016", "2017", "pooled"}

    # re-scored without training: the same numbers; another cost moves only the after-cost columns
    (out / "backtest.json").unlink()
    rescored = run_main(["backtest", "--score_only", "--out", "bt"], tmp_path)
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert json.loads((out / "backtest.json").read_text())["summary"] == result["summary"]
    assert run_main(["backtest", "--score_only", "--out", "bt", "--cost_bps", "15"], tmp_path).returncode == 0
    dearer = json.loads((out / "backtest.json").read_text())["summary"]["years"]["2017"]["signal"]["model"]
    assert dearer["ic_mean"] == signal["ic_mean"]
    assert dearer["net_bps"] == pytest.approx(signal["net_bps"] - 10.0 * signal["turnover"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--score_only", "--out", "nothing"], "holds no backtest"),
        (["--score_only", "--out", "bt", "--years", "2017"], "--score_only re-scores the folds in --out"),
        (["--years", "2017", "--out", "bt", "--cost_bps", "-1"], "--cost_bps must be a finite number >= 0"),
        (["--out", "bt"], "the following arguments are required: --years"),
    ],
)
def test_score_only_and_cost_options_are_one_line(tmp_path, options, message):
    result = run_main(["backtest", *options], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_validation_only_search_reports_validation_years(tmp_path):
    args = ["backtest", "--validation_only", "--years", "2015", "2016", "--out", "search", *BRIEF]
    args[args.index("--trainer.max_epochs") + 1] = "1"
    done = run_main(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "search" / "backtest.json").read_text())
    assert set(result["summary"]["years"]) == {"2015", "2016"}
    assert not (tmp_path / "search" / "predictions").exists()  # no test year was looked at
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "search").glob("runs/*/*/*/fit_summary.json"))]
    means = [result["summary"]["years"][y]["val_rel_mae_mean"] for y in ("2015", "2016")]
    assert means == [s["best_val_rel_mae"] for s in summaries]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--years", "2007", "--data.source", "synthetic"], "year 2007: no train windows"),
        (["--years", "2017", "--seeds"], "--seeds: expected at least one argument"),
        (["--years", "2017", "--data.val_end", "2016-12-31"], "--data.val_end is set for each fold by --years"),
        (["--years", "2017", "--validation_only"], "--validation_only needs two or more years"),
        (["--years", "2017", "--model.lookbak", "3"], "model.lookbak"),
        (["--years", "2017", "2017"], "must not repeat"),
    ],
)
def test_bad_options_are_one_line_before_any_training(tmp_path, options, message):
    result = run_main(["backtest", "--out", "bt", *options], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bt").exists()  # nothing written


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    result = run_main(["backtest", "--years", "2017", "--out", "taken/bt", "--data.source", "synthetic"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write to --out")


def test_djia_folds_match_the_protocol(djia_path):
    from forecast.backtest.folds import check_years

    datamodule = StockDataModule(source="csv", path=str(djia_path), base_len=30, horizon=10)
    panel = datamodule.load_panel()
    # the protocol's 2017 test split has 7,502 windows; a backtest year's test split is closed at its year's end
    assert FoldDates(2017).window_counts(panel, 30, 10)["test"] == 7502
    assert FoldDates(2013).window_counts(panel, 30, 10)["test"] == 7533
    check_years(panel, 30, 10, [2008, 2013, 2017], validation_only=False)
    with pytest.raises(BacktestError, match=r"year 2007: no train windows .* usable years: 2008 \.\. 2017"):
        check_years(panel, 30, 10, [2007], validation_only=False)


def test_a_test_year_too_short_for_its_dm_test_is_refused_before_training():
    from forecast.backtest.folds import check_years

    panel, _ = _linear_panel()  # 2021 holds 6 trading days (01-01 .. 01-08)
    check_years(panel, 3, 2, [2021], validation_only=False)  # 2-step windows: 5 origin dates, 2h = 4 needed
    with pytest.raises(BacktestError, match="year 2021: 4 test origin dates, and the Diebold–Mariano test of 3-step"):
        check_years(panel, 3, 3, [2021], validation_only=False)  # 3-step windows: 4 origins, 6 needed


def test_a_fold_uses_the_panel_it_is_handed_even_where_its_file_is_missing(tmp_path, small_panel):
    """What a node of a cluster without the data file does: the driver's panel is enough."""
    from forecast.backtest.task import Fold, FoldTask, run_fold

    csv = tmp_path / "prices.csv"
    small_panel.to_csv(csv, index=False)
    datamodule = StockDataModule(source="csv", path=str(csv), base_len=20, horizon=5)
    loaded = datamodule.loaded()
    csv.unlink()  # not on this "node"
    options = (*BRIEF[4:], "--data.source", "csv", "--data.path", str(csv))  # BRIEF without its synthetic source
    assert BRIEF[:4] == ["--data.source", "synthetic", "--data.synthetic_tickers", "2"]
    task = FoldTask(Fold(FoldDates(2017), 0), tmp_path / "fold", options, tmp_path / "p.csv")
    result = run_fold(task, loaded)
    assert not result.data_read and result.predictions is not None and len(result.predictions) > 0
    assert result.best_epoch is not None and set(result.predictions["Name"].unique()) == set(small_panel["Name"])


def test_a_fold_can_train_with_ddp(tmp_path):
    """A fold's fit may take several processes (DDP): its other ranks are started from the worker's own command."""
    from helpers import run_subprocess

    args = ["backtest", "--validation_only", "--years", "2015", "2016", "--out", "bt", *BRIEF]
    args += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_epochs", "1"]
    done = run_subprocess(args, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert set(result["summary"]["years"]) == {"2015", "2016"}
    config = (tmp_path / "bt" / "runs" / "val2016_seed0" / "lightning_logs" / "version_0" / "config.yaml").read_text()
    assert "strategy: ddp" in config
