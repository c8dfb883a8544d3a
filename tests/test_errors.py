"""Errors a user can cause: one line on stderr, exit code 2, no traceback, nothing left on disk. Internal failures:
exit code 1, the traceback, and one line saying what happened."""

import gzip

import pytest
import torch
from helpers import SMALL, run_main


def _assert_clean_failure(result, message, cwd, allowed=()):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1], result.stderr[-2000:]
    assert lines[-1].startswith("error: ")
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    leftovers = {p.name for p in cwd.iterdir()} - set(allowed)
    assert not leftovers, f"left on disk: {leftovers}"


def _fit(cwd, *args):
    return run_main(["fit", *SMALL, *args], cwd)


def test_missing_data_file(tmp_path):
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "nope.csv")
    _assert_clean_failure(result, "error: data file not found: nope.csv; give (--data.path)", tmp_path)


def test_misspelled_path_under_auto_is_an_error_not_synthetic_data(tmp_path):
    result = _fit(tmp_path, "--data.source", "auto", "--data.path", "prices.csvv")
    _assert_clean_failure(result, "data file not found: prices.csvv", tmp_path)


def test_path_beside_a_source_that_would_not_read_it(tmp_path, small_csv):
    result = _fit(tmp_path, "--data.source", "synthetic", "--data.path", str(small_csv))
    _assert_clean_failure(result, "is given but data.source is synthetic", tmp_path, allowed={"prices.csv"})


def test_auto_without_path_or_credentials_says_it_uses_synthetic_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "home"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    # no figures: matplotlib would build its font cache afresh in the new HOME (10 s)
    args = [
        "--data.source",
        "auto",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--figures.windows",
        "0",
    ]
    result = _fit(tmp_path, *args, "--test_after_fit", "false")
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "synthetic" in line]
    assert len(said) == 1 and "no --data.path and no Kaggle credentials" in said[0], result.stderr[-2000:]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Date,Close\n2020-01-01,1\n2020-01-01,2\n", "no ticker column (Name, Ticker or Symbol) and its dates repeat"),
        ("Date,Close,Name\n2020-13-45,1,A\n", "unparseable date '2020-13-45' in column Date at line 2"),
        ("Date,Close,Name\n2020-01-01,abc,A\n", "non-numeric value 'abc' in column Close at line 2"),
        ("Date,Close,Name\n2020-01-01,0,A\n", "non-positive price 0.0 in column Close at line 2"),
        (
            "Date,Close,Name\n2020-01-01,1,A\n2020-01-01,2,A\n",
            "two rows for ticker A on 2020-01-01, at line 2 and line 3",
        ),
        ("Date,Close,Name\n2020-01-01,1,A\n", "no ticker has the 40 days one window needs"),
        ("a,b\n1,2\n1,2,3\n", "cannot be read as a table"),
    ],
)
def test_malformed_data_files(tmp_path, text, message):
    (tmp_path / "data.csv").write_text(text)
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "data.csv")
    _assert_clean_failure(result, message, tmp_path, allowed={"data.csv"})


def test_truncated_gzip_file(tmp_path, small_panel):
    whole = gzip.compress(small_panel.to_csv(index=False).encode())
    (tmp_path / "prices.csv.gz").write_bytes(whole[: len(whole) // 2])
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "prices.csv.gz")
    _assert_clean_failure(result, "prices.csv.gz: cannot be read as a table (EOFError", tmp_path, {"prices.csv.gz"})


def test_unknown_ticker(tmp_path):
    result = _fit(tmp_path, "--data.tickers", "[SYN00, NOPE]")
    _assert_clean_failure(result, "unknown ticker(s) NOPE; available: SYN00 SYN01", tmp_path)


def test_missing_kaggle_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "home"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    result = _fit(tmp_path, "--data.source", "kaggle", "--data.cache_dir", str(tmp_path / "cache"))
    _assert_clean_failure(result, "no Kaggle credentials found: set KAGGLE_API_TOKEN", tmp_path, allowed={"home"})


@pytest.mark.parametrize("subcommand", ["predict", "test", "validate"])
def test_evaluating_without_a_checkpoint(tmp_path, subcommand):
    result = run_main([subcommand, "--trainer.accelerator", "cpu"], tmp_path)
    _assert_clean_failure(result, f"{subcommand} needs a trained model: pass --ckpt_path PATH", tmp_path)


def test_checkpoint_that_does_not_exist(tmp_path):
    result = run_main(["predict", "--ckpt_path", "missing.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "checkpoint not found: missing.ckpt", tmp_path)


def test_last_without_any_run(tmp_path):
    result = run_main(["fit", *SMALL, "--ckpt_path", "last"], tmp_path)
    _assert_clean_failure(result, "--ckpt_path last: no last.ckpt found in", tmp_path)


def test_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    result = run_main(["predict", "--ckpt_path", "notes.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "notes.ckpt is not a readable PyTorch checkpoint", tmp_path, allowed={"notes.ckpt"})


def test_checkpoint_of_another_model(tmp_path):
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}, "hyper_parameters": {}}, tmp_path / "other.ckpt")
    result = run_main(["predict", "--ckpt_path", "other.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "is not a checkpoint of a forecast model", tmp_path, allowed={"other.ckpt"})


def test_output_folder_that_cannot_be_written(tmp_path, trained):
    args = ["predict", "--ckpt_path", str(trained), "--output", str(tmp_path / "no" / "such" / "out.csv")]
    result = run_main([*args, "--trainer.accelerator", "cpu"], tmp_path)
    _assert_clean_failure(result, "cannot write predictions: folder", tmp_path)


def test_mistyped_option_is_one_line_without_a_usage_dump(tmp_path):
    result = run_main(["fit", "--model.no_such_option", "1"], tmp_path)
    _assert_clean_failure(result, "--model.no_such_option", tmp_path)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "see: python -m forecast fit --help" in result.stderr


def test_setting_the_model_refuses(tmp_path):
    result = _fit(tmp_path, "--model.loss", "rel_mse")
    assert result.returncode == 2 and "rel_mse" in result.stderr.strip().splitlines()[-1]


def test_debug_raises_the_exception_itself(tmp_path):
    from forecast.data import DataError

    # in a terminal, Python then prints the full traceback
    with pytest.raises(DataError, match=r"data file not found: nope\.csv"):
        _fit(tmp_path, "--data.source", "csv", "--data.path", "nope.csv", "--debug")


def _internal_failure(tmp_path, monkeypatch, attribute, replacement):
    from forecast.model import Forecaster

    monkeypatch.setattr(Forecaster, attribute, replacement)
    result = _fit(tmp_path, "--trainer.max_epochs", "1")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback (most recent call last)" in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_diverged_training_is_an_internal_failure_with_advice(tmp_path, monkeypatch):
    def nan_loss(self, batch):
        return torch.tensor(float("nan"), requires_grad=True)

    last = _internal_failure(tmp_path, monkeypatch, "training_loss", nan_loss)
    assert last.startswith("error: internal failure in fit, not a problem with your input: TrainingDivergedError")
    assert "the training loss became nan at epoch 0, step 0; try a lower learning rate" in last


def test_an_unexpected_exception_is_an_internal_failure_not_a_user_error(tmp_path, monkeypatch):
    def broken_forward(self, x, calibrated=False):
        raise ValueError("shapes (3, 4) and (5,) do not match")

    last = _internal_failure(tmp_path, monkeypatch, "member_forecasts", broken_forward)
    assert "internal failure in fit" in last and "ValueError: shapes (3, 4) and (5,) do not match" in last
    assert "report it with the traceback above" in last


def test_validation_off_beside_early_stopping_is_one_line_before_training(tmp_path):
    stopper = "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping"
    result = _fit(tmp_path, stopper, "--trainer.callbacks.monitor=val/mae", "--trainer.limit_val_batches", "0")
    _assert_clean_failure(result, "--trainer.limit_val_batches 0 turns validation off, but EarlyStopping", tmp_path)


def test_validation_off_says_the_test_scores_the_last_weights(tmp_path):
    result = _fit(tmp_path, "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no best checkpoint: the test scores the weights of the last training step" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.optimizer.init_args.lr", "-0.003"], "invalid optimizer or LR scheduler setting: Invalid learning"),
        (["--model.optimizer.betas", "[1.5, 0.9]"], "invalid optimizer or LR scheduler setting: Invalid beta"),
        (["--data.calendar", "XNYZ"], "unknown exchange calendar 'XNYZ'"),
        (["--data.base_len", "5"], "data.base_len 5 must be longer than data.horizon 10"),
        (["--data.base_len", "12", "--model.lookback", "3"], "model.lookback 3 must be in 1..2"),
        (["--trainer.max_epoch", "2"], "trainer.max_epoch"),  # no abbreviations: not --trainer.max_epochs
    ],
)
def test_a_value_a_constructor_refuses_is_one_line_before_anything_is_written(tmp_path, args, message):
    _assert_clean_failure(_fit(tmp_path, *args), message, tmp_path)


def test_one_ticker_needs_no_brackets(tmp_path):
    result = _fit(tmp_path, "--data.tickers", "SYN01", "--trainer.max_epochs", "1", "--test_after_fit", "false")
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert list(last["datamodule_hyper_parameters"]["tickers"]) == ["SYN01"]
