"""Ctrl-C and SIGTERM sent to real processes in every phase of every command: the exact exit code (130, 143), one
line saying what to do, no traceback, and no process left behind. ``FORECAST_PAUSE_AT`` holds a process at a phase
until the signal comes (:func:`forecast.signals.pause_here`); the processes are forked from a server that has
imported the project, so that dozens of them cost seconds, not minutes."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import CUSTOM
from helpers import SMALL, command_in_child, run_dir, run_main

SERVER = multiprocessing.get_context("forkserver")
SERVER.set_forkserver_preload(["forecast.main", "forecast.run", "forecast.backtest", "forecast.tune", "helpers"])

FIT = [*SMALL, "--test_after_fit", "false", "--trainer.max_epochs", "2"]
BRIEF = [*SMALL, *CUSTOM, "--trainer.max_epochs", "1", "--figures.windows", "0"]
SPACE = "model.dropout: {float: [0.0, 0.2]}\n"
TUNE = ["tune", "--search", "s.yaml", "--years", "2016", "2017", "--trials", "1", "--out", "t", *BRIEF]

# (command, phase): the command's arguments (a trained checkpoint is "CKPT")
CASES = {
    ("fit", "loading"): ["fit", *FIT],
    ("fit", "training"): ["fit", *FIT],
    ("fit", "validating"): ["fit", *FIT],
    ("fit", "writing"): ["fit", *FIT],
    ("validate", "loading"): ["validate", *SMALL, "--ckpt_path", "CKPT"],
    ("validate", "validating"): ["validate", *SMALL, "--ckpt_path", "CKPT"],
    ("test", "loading"): ["test", *SMALL, "--ckpt_path", "CKPT"],
    ("test", "testing"): ["test", *SMALL, "--ckpt_path", "CKPT"],
    ("test", "writing"): ["test", *SMALL, "--ckpt_path", "CKPT"],
    ("predict", "loading"): ["predict", *SMALL, "--ckpt_path", "CKPT", "--output", "p.csv"],
    ("predict", "predicting"): ["predict", *SMALL, "--ckpt_path", "CKPT", "--output", "p.csv"],
    ("predict", "writing"): ["predict", *SMALL, "--ckpt_path", "CKPT", "--output", "p.csv"],
    ("backtest", "loading"): ["backtest", "--years", "2017", "--out", "bt", *BRIEF],
    ("backtest", "training"): ["backtest", "--years", "2017", "--out", "bt", *BRIEF],
    ("backtest", "writing"): ["backtest", "--years", "2017", "--out", "bt", *BRIEF],
    ("tune", "loading"): TUNE,
    ("tune", "training"): TUNE,
    ("tune", "writing"): TUNE,
}
SIGNALS = {
    "ctrl-c": (signal.SIGINT, 130, "error: interrupted; "),
    "sigterm": (signal.SIGTERM, 143, "error: terminated (SIGTERM); "),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    done = run_main(["fit", *SMALL, "--trainer.max_epochs", "1", "--test_after_fit", "false"], root)
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir(root) / "checkpoints" / "last.ckpt"


def _start(argv, folder: Path, phase: str):
    folder.mkdir()
    (folder / "s.yaml").write_text(SPACE)
    env = {"FORECAST_PAUSE_AT": phase, "FORECAST_PAUSE_FILE": str(folder / "paused"), "PYTHONWARNINGS": "ignore"}
    process = SERVER.Process(target=command_in_child, args=(argv, str(folder), env, str(folder / "log")))
    process.start()
    return process


def _left_behind(pgid: int, seconds: float = 5.0) -> bool:
    """Whether a process of the group ``pgid`` still runs ``seconds`` after its leader ended (a task's server
    process ends when it sees its driver gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_every_phase_of_every_command_ends_with_the_signals_code_and_one_line(tmp_path, checkpoint):
    runs = {}
    for (command, phase), argv in CASES.items():
        for name, (signum, code, line) in SIGNALS.items():
            argv = [str(checkpoint) if a == "CKPT" else a for a in argv]
            folder = tmp_path / f"{command}-{phase}-{name}"
            runs[(command, phase, name)] = (_start(argv, folder, phase), folder, signum, code, line)
            while len([r for r in runs.values() if r[0].is_alive()]) >= 4:  # a few at a time on this machine
                _signal_those_paused(runs)
                time.sleep(0.05)
    deadline = time.monotonic() + 240
    while any(r[0].is_alive() for r in runs.values()) and time.monotonic() < deadline:
        _signal_those_paused(runs)
        time.sleep(0.05)
    failures = []
    for key, (process, folder, _, code, line) in runs.items():
        process.join(timeout=1)
        text = (folder / "log").read_text()
        errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
        if not (folder / "paused").is_file():
            failures.append(f"{key}: never reached its phase (exit {process.exitcode}): {text[-800:]}")
        elif process.exitcode != code or len(errors) != 1 or not errors[0].startswith(line) or "Traceback" in text:
            failures.append(f"{key}: exit {process.exitcode}, want {code}; error lines {errors}; {text[-800:]}")
        elif _left_behind(process.pid):
            failures.append(f"{key}: left processes behind in its group")
    assert not failures, "\n".join(failures)


def _signal_those_paused(runs):
    for process, folder, signum, _, _ in runs.values():
        if process.is_alive() and (folder / "paused").is_file() and not (folder / "signalled").is_file():
            (folder / "signalled").write_text("")
            os.killpg(process.pid, signum) if signum == signal.SIGINT else os.kill(process.pid, signum)


def test_a_sigtermed_fit_resumes_from_the_step_it_reached_and_ends_as_an_uninterrupted_one(tmp_path):
    tiny = [*SMALL, "--trainer.deterministic", "true", "--trainer.limit_train_batches", "8", "--data.batch_size", "32",
            "--trainer.max_epochs", "3", "--test_after_fit", "false"]  # fmt: skip
    straight = tmp_path / "straight"
    straight.mkdir()
    assert run_main(["fit", *tiny], straight).returncode == 0
    process = _start(["fit", *tiny], tmp_path / "broken", "training")
    while process.is_alive() and not (tmp_path / "broken" / "paused").is_file():
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGTERM)  # as a scheduler preempting the job
    process.join(timeout=120)
    assert process.exitcode == 143
    saved = torch.load(run_dir(tmp_path / "broken") / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0 and saved["global_step"] == 1  # the step it reached, inside the first epoch
    stderr = (tmp_path / "broken" / "log").read_text()
    assert "resumes this run from step 1 (epoch 0)" in stderr.strip().splitlines()[-1]
    resumed = run_main(["fit", *tiny, "--ckpt_path", "last"], tmp_path / "broken")  # the requeued job's command
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(run_dir(straight) / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(run_dir(tmp_path / "broken") / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 24  # no batch done twice
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=0, atol=0, msg=name)
