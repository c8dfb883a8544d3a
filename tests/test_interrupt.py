"""A fit killed between epochs and resumed with --ckpt_path last ends with the uninterrupted run's weights."""

import os
import signal
import subprocess
import sys
import time

import torch
from helpers import SMALL, run_dir, run_main

TINY = [
    *SMALL,
    "--trainer.deterministic",
    "true",
    "--trainer.limit_train_batches",
    "8",
    "--data.batch_size",
    "32",
    "--trainer.max_epochs",
    "3",
    "--test_after_fit",
    "false",
]


def _final_weights(root):
    return torch.load(run_dir(root) / "checkpoints" / "last.ckpt", weights_only=True)


def _wait_for_epoch(path, epoch, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file():
            try:
                if torch.load(path, weights_only=True)["epoch"] >= epoch:
                    return True
            except (EOFError, RuntimeError, OSError):  # caught mid-write: look again
                pass
        time.sleep(0.05)
    return False


def test_sigkill_between_epochs_then_resume_matches_uninterrupted_run(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir()
    broken.mkdir()
    reference = run_main(["fit", *TINY], straight)
    assert reference.returncode == 0, reference.stderr[-3000:]

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", "fit", *TINY],
        cwd=broken,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        saved = _wait_for_epoch(run_dir(broken) / "checkpoints" / "last.ckpt", 0, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert saved, "the first epoch's checkpoint never appeared"
    assert _final_weights(broken)["epoch"] < 2, "killed too late to test anything"

    resumed = run_main(["fit", *TINY, "--ckpt_path", "last"], broken)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_weights(straight), _final_weights(broken)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)


def _ctrl_c_as_in_a_terminal():
    """In the child: Ctrl-C handled as in a terminal, even when pytest was started in the background by a
    non-interactive shell, where SIGINT is ignored and children inherit that (these tests then saw exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_after_first_epoch(args, cwd, checkpoint):
    """Run ``python -m forecast ARGS``, press Ctrl-C (SIGINT) once ``checkpoint`` holds epoch 0; (code, stderr)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("FORECAST_DEBUG", None)
    slow = [*args, "--trainer.max_epochs", "50", "--trainer.limit_train_batches", "8"]
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", *slow], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    try:
        assert _wait_for_epoch(checkpoint(), 0, process), "the first epoch's checkpoint never appeared"
        os.killpg(process.pid, signal.SIGINT)  # the terminal sends Ctrl-C to the whole process group
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def test_ctrl_c_during_fit_says_how_to_resume(tmp_path):
    code, stderr = _interrupt_after_first_epoch(
        ["fit", *SMALL, "--test_after_fit", "false"], tmp_path, lambda: run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    )
    assert code == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; the same command with --ckpt_path last resumes this run from its last")
    assert "Traceback" not in stderr


def test_ctrl_c_during_a_backtest_is_one_line(tmp_path):
    args = ["backtest", "--years", "2017", "--out", "bt", *SMALL]
    code, stderr = _interrupt_after_first_epoch(
        args, tmp_path, lambda: run_dir(tmp_path / "bt" / "runs" / "2017_seed0") / "checkpoints" / "last.ckpt"
    )
    assert code == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted; the same command resumes the backtest (finished folds are kept)"
    )
    assert "Traceback" not in stderr


def test_ctrl_c_during_a_tune_queues_the_trial_again(tmp_path):
    import optuna

    (tmp_path / "space.yaml").write_text("model.dropout: {float: [0.0, 0.2]}\n")
    args = ["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "2", "--out", "tune", *SMALL]
    fold = tmp_path / "tune" / "trials" / "0000" / "runs" / "val2016_seed0"
    code, stderr = _interrupt_after_first_epoch(args, tmp_path, lambda: run_dir(fold) / "checkpoints" / "last.ckpt")
    assert code == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted; the same command resumes the study (the interrupted trials run again first, their "
        "finished folds kept)"
    )
    assert "Traceback" not in stderr
    storage = f"sqlite:///{tmp_path / 'tune' / 'study.db'}"
    trial, queued = optuna.load_study(study_name="forecast", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted (Ctrl-C)"
    # queued again with its settings, to continue in its folder; the same command runs it first
    assert queued.state == optuna.trial.TrialState.WAITING and queued.user_attrs["resumes"] == 0
    again = run_main([*args[:7], "0", *args[8:], "--trainer.max_epochs", "50", "--trainer.limit_train_batches", "8"],
                     tmp_path)  # fmt: skip
    assert "1 trial run, 1 queued to run first" in again.stdout, again.stdout
    study = optuna.load_study(study_name="forecast", storage=storage)
    assert len(study.trials) == 2  # not queued twice
    assert study.ask().suggest_float("model.dropout", 0.0, 0.2) == trial.params["model.dropout"]  # same settings


def test_an_interrupted_process_whose_shutdown_hangs_still_ends():
    hang = "from forecast.signals import end_within; import time; end_within(0.5, 130); time.sleep(60)"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", hang], timeout=30)
    assert done.returncode == 130 and time.monotonic() - started < 20
