"""The command line uses LightningCLI and jsonargparse through their public API only, and what the private overrides
of earlier versions protected still holds: each subcommand has its own options, and a checkpoint's hyperparameters
never silently replace a setting the user gave."""

import inspect

import torch
from helpers import SMALL, run_dir, run_main
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from forecast.cli import ForecastCLI
from forecast.defaults import ForecastParser


def _private_overrides(cls, bases):
    """Members named ``_x`` (not dunder) that ``cls`` defines itself and a base class also defines."""
    own = {name for name in vars(cls) if name.startswith("_") and not name.startswith("__")}
    return sorted(name for name in own if any(hasattr(base, name) for base in bases))


def test_no_private_member_of_lightning_or_jsonargparse_is_overridden():
    assert _private_overrides(ForecastCLI, [LightningCLI]) == []
    assert _private_overrides(ForecastParser, [LightningArgumentParser, ArgumentParser]) == []
    # every method ForecastCLI overrides is public in LightningCLI
    overridden = {n for n in vars(ForecastCLI) if callable(getattr(ForecastCLI, n)) and hasattr(LightningCLI, n)}
    assert overridden and all(not n.startswith("_") or n.startswith("__") for n in overridden)
    assert all(not inspect.getattr_static(LightningCLI, n).__name__.startswith("_") for n in overridden - {"__init__"})


def test_each_subcommand_has_its_own_options(tmp_path):
    fit_help = run_main(["fit", "--help"], tmp_path).stdout
    predict_help = run_main(["predict", "--help"], tmp_path).stdout
    assert "--test_after_fit" in fit_help and "--init_from" in fit_help and "--output" not in fit_help
    assert "--output" in predict_help and "--test_after_fit" not in predict_help and "--init_from" not in predict_help
    assert "--return_predictions" not in predict_help  # the forecasts go to the writer
    refused = run_main(["predict", "--test_after_fit", "false"], tmp_path)
    assert refused.returncode == 2 and "test_after_fit" in refused.stderr


def test_a_resume_keeps_a_setting_the_user_changes_over_the_checkpoints_hyperparameters(tmp_path):
    """LightningCLI applies a checkpoint's hyperparameters over the config whenever ckpt_path names a file; the rule
    lets a resume change the loss's Huber threshold, and that choice must reach the model."""
    fit = [*SMALL, "--model.loss", "huber", "--test_after_fit", "false"]
    assert run_main(["fit", *fit, "--trainer.max_epochs", "1"], tmp_path).returncode == 0
    last = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["hyper_parameters"]["huber_delta"] == 1.0
    again = ["fit", *fit, "--trainer.max_epochs", "2", "--ckpt_path", str(last), "--model.huber_delta", "2.5"]
    resumed = run_main(again, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 1 and saved["hyper_parameters"]["huber_delta"] == 2.5
