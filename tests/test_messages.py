"""No silent choices and messages in the caller's own terms: a notebook user's mistakes each get one message in
Python's terms, from the library's own error classes; two columns read as one name, a lookback of 0, an option the
search space also names are refused; the help of evaluation commands lists what they use; a fit into a file or pipe
writes plain lines; a root that cannot be written is one line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SMALL, run_main

import forecast
from forecast.data import StockDataModule, synthetic_panel
from forecast.data.errors import DataError, SchemaError
from forecast.errors import ConfigError, UserError
from forecast.run import fit

CHECKPOINT = str(Path(__file__).parent / "fixtures" / "main-82ccac3-point.ckpt")


@pytest.fixture(scope="module")
def model():
    return forecast.load(CHECKPOINT)


@pytest.fixture(scope="module")
def prices():
    return synthetic_panel(n_tickers=3, seed=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p["Close"].to_numpy(), "got a numpy ndarray of shape (9387,); build one, e.g. pd.DataFrame("),
        (lambda p: p[p.Name == "SYN00"].set_index("Date")["Close"], "series.rename('Close').rename_axis('Date')"),
        (lambda p: p[p.Name == "SYN00"].drop(columns="Name").set_index("Date"), "pass prices.rename_axis('Date')"),
        (lambda p: p[p.Name == "SYN00"].drop(columns="Name"), "give its name with ticker= (frame_ticker= for a"),
    ],
)
def test_prices_in_the_wrong_shape_say_how_to_make_them_a_table(model, prices, make, message):
    with pytest.raises(DataError) as error:
        model.predict(make(prices), at="latest")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, UserError)


def test_a_date_that_is_not_a_date_or_not_a_session_is_said_so(model, prices):
    with pytest.raises(DataError, match=r"at= takes None \(the test windows\), 'latest' or a date .*got 'tomorrow'"):
        model.predict(prices, at="tomorrow")
    with pytest.raises(DataError, match=r"at='2017-07-01' is not a trading session of XNYS \(a Saturday\); the session"
                                        r" before it is 2017-06-30"):  # fmt: skip
        model.predict(prices, at="2017-07-01")
    assert len(model.predict(prices, at="2017-06-30")) == 3 * model.horizon


def test_python_errors_name_keywords_and_the_command_line_flags(model, prices, tmp_path):
    with pytest.raises(SchemaError, match="choose one with price_column="):
        model.predict(prices, price_column="Adj Close")
    with pytest.raises(forecast.checkpoint.CheckpointError, match=r"checkpoint= best: .*holds the runs \(root=\)"):
        forecast.load("best", root=tmp_path)
    with pytest.raises(ConfigError, match=r"unrecognized arguments: trainer\.max_epoch=1"):
        fit({"trainer": {"max_epoch": 1}})
    prices.to_csv(tmp_path / "p.csv", index=False)
    done = run_main(["predict", "--ckpt_path", CHECKPOINT, "--data.path", str(tmp_path / "p.csv"),
                     "--data.price_column", "Adj Close", "--output", "o.csv"], tmp_path)  # fmt: skip
    assert done.returncode == 2 and "choose one with --data.price_column" in done.stderr


@pytest.mark.parametrize("header", ["Date,Close,close,Name", "Date,Close,Close,Name"])
def test_two_columns_read_as_one_name_are_named_both(tmp_path, header):
    (tmp_path / "p.csv").write_text(f"{header}\n2017-01-03,1.0,2.0,A\n")
    with pytest.raises(SchemaError, match=r"columns 'Close' and '(close|Close\.1)' both read as 'close'"):
        StockDataModule(source="csv", path=str(tmp_path / "p.csv")).load_panel()


@pytest.mark.parametrize("lookback", ["0", "-2"])
def test_a_lookback_below_one_is_refused_with_what_it_means(tmp_path, lookback):
    done = run_main(["fit", *SMALL, "--model.lookback", lookback], tmp_path)
    assert done.returncode == 2
    assert f"model.lookback {lookback}: the encoded days each regression row uses must be 1 or more" in done.stderr


@pytest.mark.parametrize("command", ["predict", "test", "validate"])
def test_evaluation_help_lists_what_evaluation_uses(command):
    text = subprocess.run([sys.executable, "-m", "forecast", command, "--help"], capture_output=True, text=True).stdout
    for option in ("--trainer.max_epochs", "--model.optimizer", "--model.lr_scheduler", "--lr_monitor", "--figures",
                   "--trainer.gradient_clip_val", "--model.lam_lr", "--checkpoint.monitor"):  # fmt: skip
        assert option not in text, option
    flat = " ".join(text.split())
    assert "--ckpt_path CKPT_PATH" in text and "or last / best (the newest run's last.ckpt" in flat
    assert "registry" not in text and "hpc" not in text and "Useful to" not in text  # Lightning's generic texts
    assert "--data.path" in text and "--trainer.accelerator" in text and "--checkpoint.dirpath" in text
    assert len(text.splitlines()) < 600


def test_fit_help_keeps_every_option_fit_uses():
    text = subprocess.run([sys.executable, "-m", "forecast", "fit", "--help"], capture_output=True, text=True).stdout
    for option in ("--trainer.max_epochs", "--model.optimizer", "--lr_monitor", "--checkpoint.monitor", "--init_from"):
        assert option in text, option


def test_a_fit_into_a_file_writes_a_plain_line_per_epoch(tmp_path):
    args = [*SMALL, "--trainer.max_epochs", "2", "--test_after_fit", "false"]
    args.remove("--trainer.enable_progress_bar")
    args.remove("false")  # the default: a bar on a terminal, lines elsewhere
    with (tmp_path / "out.txt").open("w") as out:
        done = subprocess.run([sys.executable, "-m", "forecast", "fit", *args], cwd=tmp_path, stdout=out,
                              stderr=subprocess.STDOUT)  # fmt: skip
    text = (tmp_path / "out.txt").read_text()
    assert done.returncode == 0 and "\r" not in text
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("epoch ")] == ["epoch 0", "epoch 1"]


def test_a_root_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = run_main(["fit", *SMALL, "--trainer.default_root_dir", str(tmp_path / "a-file" / "runs")], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: cannot write to --trainer.default_root_dir") and "give a folder you can" in line
    assert "Traceback" not in done.stderr


def test_a_numpy_array_given_to_the_datamodule_is_the_same_message():
    with pytest.raises(DataError, match="got a numpy ndarray of shape"):
        StockDataModule(path=np.arange(5.0))
    with pytest.raises(DataError, match=r"series\.rename"):
        StockDataModule(path=pd.Series([1.0, 2.0]))
