"""The private LightningCLI members the CLI overrides (pinned to lightning 2.6.x in pyproject.toml).

No public hook exists for either: these tests fail loudly when a Lightning release renames, re-signs or stops
calling them, before a user meets the silent consequences (options that vanish, or a checkpoint's model
settings applied over the command line's).
"""

import inspect

import lightning
from lightning.pytorch.cli import LightningCLI

from forecast.cli import ForecastCLI


def test_lightning_is_the_tested_minor_version():
    assert lightning.__version__.startswith("2.6."), f"tested with lightning 2.6.x, found {lightning.__version__}"


def test_prepare_subcommand_parser_is_still_the_per_subcommand_hook():
    signature = inspect.signature(LightningCLI._prepare_subcommand_parser)
    assert list(signature.parameters) == ["self", "klass", "subcommand", "kwargs"]
    assert "self._prepare_subcommand_parser(" in inspect.getsource(LightningCLI._add_subcommands)


def test_parse_ckpt_path_is_still_called_after_parse_arguments():
    assert list(inspect.signature(LightningCLI._parse_ckpt_path).parameters) == ["self"]
    source = inspect.getsource(LightningCLI.__init__)
    assert source.index("self.parse_arguments(") < source.index("self._parse_ckpt_path()")
    assert ForecastCLI._parse_ckpt_path is not LightningCLI._parse_ckpt_path


def test_the_overrides_act(tmp_path):
    from helpers import run_main

    fit_help = run_main(["fit", "--help"], tmp_path).stdout
    predict_help = run_main(["predict", "--help"], tmp_path).stdout
    assert "--test_after_fit" in fit_help and "--output" not in fit_help
    assert "--output" in predict_help and "--test_after_fit" not in predict_help
