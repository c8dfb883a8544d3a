"""The application through the real CLI (in-process): fit writes one run folder with checkpoints and TensorBoard
events; LR schedulers by config alone; the tutorial config."""

import json
from pathlib import Path

import pytest
import torch
from helpers import SMALL, run_dir, run_main
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_fit_writes_one_run_folder_with_checkpoints_events_and_summary(tmp_path):
    # 3 threads: unlike torch's default on any machine with other than 3 cores, so the option must have acted
    result = run_main(["fit", *SMALL, "--trainer.max_epochs", "2", "--torch_threads", "3"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_dir(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"lightning_logs"}  # nothing else in the working directory
    summary = json.loads((run / "fit_summary.json").read_text())
    assert summary["torch_threads"] == 3 and summary["epochs"] == 2
    checkpoints = run / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    assert summary["last_checkpoint"] == str(checkpoints / "last.ckpt")
    assert Path(summary["best_checkpoint"]).parent == checkpoints and Path(summary["best_checkpoint"]).is_file()
    # the end of fit prints where the best and last checkpoints are
    assert f"best checkpoint: {summary['best_checkpoint']}" in result.stdout
    assert f"last checkpoint: {checkpoints / 'last.ckpt'}" in result.stdout
    assert (run / "config.yaml").is_file()
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "val/mae", "val/rel_mae", "lambda", "lr-AdamW/network", "lr-AdamW/lambda"} <= scalars, scalars
    assert len(acc.Scalars("lambda")) >= 6  # one per training step (3 steps x 2 epochs)
    assert all(e.value > 0 for e in acc.Scalars("lambda"))
    assert acc.Tags()["images"], "the forecast figure is logged each validation epoch"
    # the end of fit prints the protocol table for the best checkpoint and saves it in the run folder
    assert "| model |" in result.stdout and "relMAE" in result.stdout
    assert (run / "test_metrics.json").is_file()


def test_default_root_dir_is_the_root_of_every_output(tmp_path):
    root, cwd = tmp_path / "elsewhere", tmp_path / "cwd"
    cwd.mkdir()
    args = ["fit", *SMALL, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root)]
    result = run_main(args, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(cwd.iterdir())
    assert (run_dir(root) / "checkpoints" / "last.ckpt").is_file()
    assert list(run_dir(root).glob("events.out.tfevents.*")) and (run_dir(root) / "fit_summary.json").is_file()


def test_last_checkpoint_is_refreshed_every_epoch_even_without_improvement(tmp_path):
    # lr 0 never improves validation after the first epoch: only epoch 0 is "best", yet last must be epoch 2
    args = ["fit", *SMALL, "--trainer.max_epochs", "3", "--model.optimizer", "torch.optim.SGD"]
    result = run_main([*args, "--model.optimizer.lr", "0.0", "--test_after_fit", "false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = run_dir(tmp_path) / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2
    assert [p.name[:8] for p in checkpoints.glob("epoch*.ckpt")] == ["epoch000"]  # the best is still epoch 0


def test_fit_without_arguments_uses_code_defaults(tmp_path):
    result = run_main(["fit", "--print_config"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_epochs: 10" in result.stdout and "normalisation: zscore" in result.stdout
    assert not list(tmp_path.iterdir())


SCHEDULERS = {
    "cosine": ["--model.lr_scheduler", "torch.optim.lr_scheduler.CosineAnnealingLR", "--model.lr_scheduler.T_max", "2"],
    "onecycle": [
        "--model.lr_scheduler",
        "torch.optim.lr_scheduler.OneCycleLR",
        "--model.lr_scheduler.max_lr",
        "0.01",
        "--model.lr_scheduler.total_steps",
        "6",
    ],
    "plateau": [
        "--model.lr_scheduler",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "--model.lr_scheduler.factor",
        "0.5",
        "--model.lr_scheduler.patience",
        "0",
        # a relative threshold of 10 counts every epoch as "no improvement": the rate halves after each
        "--model.lr_scheduler.threshold",
        "10",
    ],
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_lr_schedulers_by_config_alone(tmp_path, name):
    args = ["fit", *SMALL, "--trainer.max_epochs", "2", "--test_after_fit", "false", *SCHEDULERS[name]]
    result = run_main(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = EventAccumulator(str(run_dir(tmp_path)), size_guidance={"scalars": 0}).Reload()
    rates = [e.value for e in acc.Scalars("lr-AdamW/network")]
    assert len(set(rates)) > 1, f"{name}: the learning rate never changed: {rates}"


def test_tutorial_config_runs(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "tutorial.yaml"
    result = run_main(
        ["fit", "--config", str(config), *SMALL, "--trainer.max_epochs", "1", "--data.batch_size", "8"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "split=tutorial" in result.stderr  # the leaky split says so


def test_a_quiet_terminal_results_on_stdout_and_an_error_alone_on_stderr(trained, tmp_path):
    predicted = run_main(["predict", "--ckpt_path", str(trained), "--output", "p.csv"], tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert predicted.stderr.strip() == "", predicted.stderr  # no dirpath or EarlyStopping warnings, no notices
    for noise in ("Seed set to", "GPU available", "Restoring states", "data source:", "1 tickers"):
        assert noise not in predicted.stdout
    assert "wrote 2 forecast rows" not in predicted.stdout and "for 2 tickers" in predicted.stdout
    failed = run_main(["predict", "--ckpt_path", str(trained), "--data.path", "nope.csv"], tmp_path)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_a_real_process_is_as_quiet(trained, tmp_path):
    """In a process of its own (Lightning installs its console handler on import), the same quiet terminal."""
    from helpers import run_subprocess

    done = run_subprocess(["predict", "--ckpt_path", str(trained), "--output", "p.csv"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip() == "", done.stderr
    assert "GPU available" not in done.stdout and "Seed set to" not in done.stdout and "Tip" not in done.stdout


def test_help_names_the_command_and_shows_no_markup():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "forecast", "fit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m forecast")
    assert "``" not in done.stdout and ":class:`" not in done.stdout and ":func:`" not in done.stdout
    assert "--debug" in done.stdout
