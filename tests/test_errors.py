"""Errors a user can cause: one line on stderr, exit code 2, no traceback, nothing left on disk."""

import pytest
from helpers import SMALL, run_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    result = run_cli(["fit", *SMALL, "--trainer.max_epochs", "1"], root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "lightning_logs" / "checkpoints" / "last.ckpt"


def _assert_clean_failure(result, message, cwd, allowed=()):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    last = result.stderr.strip().splitlines()[-1]
    assert message in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    leftovers = {p.name for p in cwd.iterdir()} - set(allowed)
    assert not leftovers, f"left on disk: {leftovers}"


def _fit(cwd, *args, env=None):
    return run_cli(["fit", *SMALL, *args], cwd, env=env)


def test_missing_data_file(tmp_path):
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "nope.csv")
    _assert_clean_failure(result, "error: data file not found: nope.csv; pass --data.path", tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Date,Close\n2020-01-01,1\n", "missing column(s) Name"),
        ("Date,Close,Name\n2020-13-45,1,A\n", "unparseable date '2020-13-45' in column Date at row 1"),
        ("Date,Close,Name\n2020-01-01,abc,A\n", "non-numeric value 'abc' in column Close at row 1"),
        ("Date,Close,Name\n2020-01-01,0,A\n", "non-positive price 0.0 in column Close at row 1"),
        ("Date,Close,Name\n2020-01-01,1,A\n2020-01-01,2,A\n", "duplicate row for ticker A on 2020-01-01 at row 2"),
        ("Date,Close,Name\n2020-01-01,1,A\n", "no ticker has the 40 days one window needs"),
        ("a,b\n1,2\n1,2,3\n", "cannot be read as a table"),
    ],
)
def test_malformed_data_files(tmp_path, text, message):
    (tmp_path / "data.csv").write_text(text)
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "data.csv")
    _assert_clean_failure(result, message, tmp_path, allowed={"data.csv"})


def test_unknown_ticker(tmp_path):
    result = _fit(tmp_path, "--data.tickers", "[SYN00, NOPE]")
    _assert_clean_failure(result, "unknown ticker(s) NOPE; available: SYN00 SYN01", tmp_path)


def test_missing_kaggle_credentials(tmp_path):
    env = {
        "HOME": str(tmp_path / "home"),
        "KAGGLE_CONFIG_DIR": str(tmp_path / "home"),
        "KAGGLE_API_TOKEN": "",
        "KAGGLE_USERNAME": "",
        "KAGGLE_KEY": "",
    }
    (tmp_path / "home").mkdir()
    result = _fit(tmp_path, "--data.source", "kaggle", env=env)
    _assert_clean_failure(result, "no Kaggle credentials found: set KAGGLE_API_TOKEN", tmp_path, allowed={"home"})


def test_predict_without_a_checkpoint(tmp_path):
    result = run_cli(["predict", "--output", "out.csv", "--trainer.accelerator", "cpu"], tmp_path)
    _assert_clean_failure(result, "predict needs a trained model: pass --ckpt_path PATH", tmp_path)


def test_checkpoint_that_does_not_exist(tmp_path):
    result = run_cli(["predict", "--ckpt_path", "missing.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "checkpoint not found: missing.ckpt", tmp_path)


def test_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    result = run_cli(["predict", "--ckpt_path", "notes.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "notes.ckpt is not a readable PyTorch checkpoint", tmp_path, allowed={"notes.ckpt"})


def test_checkpoint_of_another_model(tmp_path):
    import torch

    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}, "hyper_parameters": {}}, tmp_path / "other.ckpt")
    result = run_cli(["predict", "--ckpt_path", "other.ckpt", "--output", "out.csv"], tmp_path)
    _assert_clean_failure(result, "is not a checkpoint of a forecast model", tmp_path, allowed={"other.ckpt"})


def test_checkpoint_incompatible_with_the_requested_model(tmp_path, checkpoint):
    args = ["predict", "--ckpt_path", str(checkpoint), "--output", "out.csv", "--data.channels", "[Open, Close]"]
    result = run_cli([*args, "--trainer.accelerator", "cpu"], tmp_path)
    _assert_clean_failure(result, "does not fit this model (0 missing, 0 unexpected, 1 resized weights", tmp_path)


def test_output_folder_that_cannot_be_written(tmp_path, checkpoint):
    args = ["predict", "--ckpt_path", str(checkpoint), "--output", str(tmp_path / "no" / "such" / "out.csv")]
    result = run_cli([*args, "--trainer.accelerator", "cpu"], tmp_path)
    _assert_clean_failure(result, "cannot write predictions: folder", tmp_path)


def test_config_key_that_does_not_exist(tmp_path):
    result = run_cli(["fit", "--model.no_such_option", "1"], tmp_path)
    assert result.returncode == 2
    assert "--model.no_such_option" in result.stderr
    assert not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path):
    result = _fit(tmp_path, "--data.source", "csv", "--data.path", "nope.csv", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr
