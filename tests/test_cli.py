"""The application through the real CLI: fit writes checkpoints and TensorBoard events; resume continues."""

import json
from pathlib import Path

import pytest
import torch
from helpers import SMALL, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_fit_writes_checkpoint_and_tensorboard_events(tmp_path):
    # 3 threads: unlike torch's default on any machine with other than 3 cores, so the option must have acted
    result = run_cli(["fit", *SMALL, "--trainer.max_epochs", "2", "--torch_threads", "3"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "fit_summary.json").read_text())
    assert summary["torch_threads"] == 3
    checkpoints = tmp_path / "lightning_logs" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    assert any(p.name.startswith("epoch") for p in checkpoints.iterdir())
    events = list((tmp_path / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "val/mae", "val/rel_mae", "lambda", "lr-AdamW/network", "lr-AdamW/lambda"} <= scalars, scalars
    assert len(acc.Scalars("lambda")) >= 6  # one per training step (3 steps x 2 epochs)
    assert all(e.value > 0 for e in acc.Scalars("lambda"))
    assert acc.Tags()["images"], "the forecast figure is logged each validation epoch"
    # the end of fit prints the protocol table for the best checkpoint and saves it
    assert "| model |" in result.stdout and "relMAE" in result.stdout
    assert (events[0].parent / "test_metrics.json").is_file()


def test_fit_resumes_from_last_checkpoint(tmp_path):
    first = run_cli(["fit", *SMALL, "--trainer.max_epochs", "1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "lightning_logs" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    second = run_cli(["fit", *SMALL, "--trainer.max_epochs", "3", "--ckpt_path", "last"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in second.stderr + second.stdout
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 2
    assert resumed["global_step"] == 9  # 3 epochs x 3 batches: the first epoch was not trained again


def test_fit_without_arguments_uses_code_defaults(tmp_path):
    result = run_cli(["fit", "--print_config"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_epochs: 10" in result.stdout and "normalisation: zscore" in result.stdout


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
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    events = next((tmp_path / "lightning_logs").glob("version_0"))
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0}).Reload()
    rates = [e.value for e in acc.Scalars("lr-AdamW/network")]
    assert len(set(rates)) > 1, f"{name}: the learning rate never changed: {rates}"


def test_tutorial_config_runs(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "tutorial.yaml"
    result = run_cli(
        ["fit", "--config", str(config), *SMALL, "--trainer.max_epochs", "1", "--data.batch_size", "8"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "split=tutorial" in result.stderr  # the leaky split says so
