"""One run, one folder; a checkpoint is enough and can't be misread (the rule in forecast.checkpoint)."""

import json

import pandas as pd
import pytest
import torch
from helpers import SMALL, run_dir, run_main

FIT = [*SMALL, "--trainer.max_epochs", "1", "--test_after_fit", "false"]


def _predict(cwd, *args):
    return run_main(["predict", "--trainer.accelerator", "cpu", "--output", "out.csv", *args], cwd)


def test_two_fits_in_one_root_then_last_and_best_mean_the_newest_run(tmp_path, small_csv):
    # the README's order: the quick start on synthetic data, then a fit on a real file (here: a CSV)
    first = run_main(["fit", *FIT, "--data.horizon", "5"], tmp_path)
    second = run_main(
        ["fit", *FIT, "--data.source", "csv", "--data.path", str(small_csv), "--data.horizon", "4"], tmp_path
    )
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    for version in (0, 1):
        assert (run_dir(tmp_path, version) / "checkpoints" / "last.ckpt").is_file()  # each run its own last.ckpt
    for alias in ("last", "best"):
        result = _predict(tmp_path, "--ckpt_path", alias)
        assert result.returncode == 0, result.stderr[-3000:]
        frame = pd.read_csv(tmp_path / "out.csv")
        assert sorted(frame["step"].unique()) == [1, 2, 3, 4]  # the second model's horizon
        assert set(frame["Name"]) == {"SYN00", "SYN01", "SYN02"}  # the CSV's tickers (7 seeded), not SYN00/SYN01
        assert str(run_dir(tmp_path, 1)) in result.stdout  # progress and results: stdout
    tested = run_main(["test", "--trainer.accelerator", "cpu", "--ckpt_path", "last"], tmp_path)
    assert tested.returncode == 0, tested.stderr[-3000:]
    report = json.loads((run_dir(tmp_path, 1) / "test-last" / "test_metrics.json").read_text())
    assert len(report["model"]["mae_step"]) == 4
    # validate, test and predict started no run and wrote nothing beside what was asked for
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    assert {p.name for p in tmp_path.iterdir()} == {"lightning_logs", "out.csv", "prices.csv"}
    # the newest run's best checkpoint gone: an error, never the older run's best
    for best in (run_dir(tmp_path, 1) / "checkpoints").glob("epoch*.ckpt"):
        best.unlink()
    result = _predict(tmp_path, "--ckpt_path", "best")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the newest run's best checkpoint" in result.stderr and str(run_dir(tmp_path, 1)) in result.stderr


def test_best_is_found_in_a_run_folder_that_moved(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    assert run_main(["fit", *FIT], old).returncode == 0
    old.rename(new)  # last.ckpt still records the best checkpoint's path under old/
    result = _predict(new, "--ckpt_path", "best")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"--ckpt_path best: {run_dir(new)}/checkpoints/epoch000" in result.stdout


def test_validate_test_predict_leave_no_stray_files(trained, tmp_path):
    before = {p.relative_to(trained.parents[3]) for p in trained.parents[3].rglob("*")}
    for command in (["validate"], ["test"], ["predict", "--output", "forecasts.csv"]):
        result = run_main([*command, "--ckpt_path", str(trained), "--trainer.accelerator", "cpu"], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in tmp_path.iterdir()} == {"forecasts.csv"}
    after = {p.relative_to(trained.parents[3]) for p in trained.parents[3].rglob("*")}
    new = {str(p) for p in after - before}
    # only test's report, beside the checkpoint's run: no new version folder, no config.yaml
    assert new and all(p.startswith("lightning_logs/version_0/test-last") for p in new), new


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--model.encoder_channels", "[2, 3]", "model.encoder_channels [2, 3] (the checkpoint has [3, 6])"),
        ("--data.horizon", "10", "data.horizon 10 (the checkpoint has 5)"),
        ("--data.normalisation", "last", "data.normalisation last (the checkpoint has zscore)"),
        ("--data.channels", "[Close, Volume]", "data.channels ['Close', 'Volume'] (the checkpoint has ['Close'])"),
    ],
)
def test_a_setting_that_contradicts_the_checkpoint_is_an_error(trained, tmp_path, flag, value, message):
    result = _predict(tmp_path, "--ckpt_path", str(trained), flag, value)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert message in last and "decides what its weights mean" in last
    assert not list(tmp_path.iterdir())


def test_a_config_that_contradicts_the_checkpoint_is_an_error(trained, tmp_path):
    (tmp_path / "model.yaml").write_text("model:\n  lookback: 3\n")
    result = _predict(tmp_path, "--ckpt_path", str(trained), "--config", "model.yaml")
    assert result.returncode == 2 and "model.lookback 3 (the checkpoint has 4)" in result.stderr


def test_the_same_value_as_the_checkpoint_is_fine(trained, tmp_path):
    result = _predict(tmp_path, "--ckpt_path", str(trained), "--data.horizon", "5", "--model.lookback", "4")
    assert result.returncode == 0, result.stderr[-2000:]


def test_resume_restores_the_data_settings_and_continues_the_same_run(tmp_path, small_csv):
    data = ["--data.source", "csv", "--data.path", str(small_csv), "--data.tickers", "[SYN01, SYN02]"]
    first = run_main(["fit", *FIT, *data, "--data.horizon", "5"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    # a config that would read Kaggle does not override the data the checkpoint was trained on
    (tmp_path / "kaggle.yaml").write_text("data:\n  source: kaggle\n")
    args = ["fit", *FIT, "--config", "kaggle.yaml", "--ckpt_path", "last", "--trainer.max_epochs", "3"]
    resumed = run_main([arg for arg in args if arg not in ("synthetic", "--data.source")], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]  # the same run
    last = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 9  # 3 epochs x 3 batches: epoch 0 not trained again
    restored = last["datamodule_hyper_parameters"]
    assert restored["source"] == "csv" and restored["path"] == str(small_csv) and restored["horizon"] == 5
    assert list(restored["tickers"]) == ["SYN01", "SYN02"]
    summary = json.loads((run_dir(tmp_path) / "fit_summary.json").read_text())
    assert [row["epoch"] for row in summary["history"]] == [0, 1, 2]  # the whole run, not the resumed part
    assert summary["seconds_total"] >= summary["history"][0]["seconds"]
    assert f"best validation epoch {summary['best_epoch']}" in resumed.stdout


def test_ckpt_path_in_a_yaml_config_restores_the_data_settings_too(trained, tmp_path):
    (tmp_path / "predict.yaml").write_text(f"ckpt_path: {trained}\ndata:\n  predict_set: latest\n")
    result = run_main(["predict", "--config", "predict.yaml", "--output", "out.csv"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "out.csv")
    assert len(frame) == 2 * 5 and frame["Name"].nunique() == 2  # latest windows, horizon and tickers restored


def test_data_choices_on_the_command_line_replace_the_checkpoints(trained, tmp_path, small_csv):
    result = _predict(tmp_path, "--ckpt_path", str(trained), "--data.path", str(small_csv))
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(pd.read_csv(tmp_path / "out.csv")["Name"]) == {"SYN00", "SYN01", "SYN02"}
