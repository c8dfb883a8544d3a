"""The settings rule (forecast.settings): as a pure function, and through every spelling of a flag or config on
the command line; resume vs warm start."""

import json
import shutil

import pandas as pd
import pytest
import torch
from helpers import SMALL, run_dir, run_main

from forecast.checkpoint import (
    INIT_FROM_KEY,
    TRAINING_KEY,
    CheckpointSettings,
    Given,
    SettingConflictError,
    apply_rule,
    checkpoint_defaults,
)
from forecast.errors import speaking

FIT = [*SMALL, "--trainer.max_epochs", "1", "--test_after_fit", "false"]
ADAMW = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003, "weight_decay": 0.01}}


def _settings():
    return CheckpointSettings(
        fixed_model={"lookback": 4},
        fixed_data={"horizon": 5},
        chosen_model={"huber_delta": 1.0},
        chosen_data={"source": "csv", "path": "a.csv", "predict_set": "test", "batch_size": 64},
        resumed={"lam_lr": None, "init_lam": 0.01, "optimizer": ADAMW},
    )


def _values(**changed):
    values = {f"model.{k}": v for k, v in {"lookback": 4, "huber_delta": 1.0, "lam_lr": None, "init_lam": 0.01}.items()}
    values |= {"model.optimizer": ADAMW, "data.horizon": 5, "data.source": "csv", "data.path": "a.csv"}
    values |= {"data.predict_set": "test", "data.batch_size": 64}
    return values | {k.replace("__", "."): v for k, v in changed.items()}


def test_the_rule_as_a_pure_function():
    settings = _settings()
    # nothing given: the checkpoint supplies every chosen setting
    kept = apply_rule(settings, Given(_values(), {}), "evaluate")
    assert kept["data"] == settings.chosen_data and kept["model"] == {"huber_delta": 1.0}
    # a flag (or a config naming the checkpoint) wins; a plain config (e.g. the training config) does not
    given = Given(_values(data__predict_set="latest", data__batch_size=32), {"data.batch_size": 32})
    kept = apply_rule(settings, given, "evaluate")
    assert "predict_set" not in kept["data"] and kept["data"]["batch_size"] == 64
    # a new path is a new origin of the data: the source is the user's too
    kept = apply_rule(settings, Given(_values(data__path="b.csv"), {}), "evaluate")
    assert {"source", "path"}.isdisjoint(kept["data"])
    # what the weights mean is never the user's
    with pytest.raises(SettingConflictError, match=r"data.horizon 10 \(the checkpoint has 5\)"):
        apply_rule(settings, Given(_values(data__horizon=10), {"data.horizon": 10}), "evaluate")
    # a resume cannot change the optimizer: the message names the argument, not the whole dictionary
    new_lr = {**ADAMW, "init_args": {**ADAMW["init_args"], "lr": 0.5}}
    with (
        speaking("command line"),
        pytest.raises(SettingConflictError, match=r"lr 0.5 \(the checkpoint has 0.003\).*--init_from"),
    ):
        apply_rule(settings, Given(_values(model__optimizer=new_lr), {}), "resume")
    with pytest.raises(SettingConflictError, match=r"with init_from= instead of ckpt_path="):  # from Python: keywords
        apply_rule(settings, Given(_values(model__optimizer=new_lr), {}), "resume")
    with pytest.raises(SettingConflictError, match=r"model.lam_lr 0.1 \(the checkpoint has None\)"):
        apply_rule(settings, Given(_values(model__lam_lr=0.1), {}), "resume")
    # ... while a warm start trains as the user says, and evaluation does not train at all
    assert apply_rule(settings, Given(_values(model__optimizer=new_lr), {}), "warm_start")["model"] == {}
    apply_rule(settings, Given(_values(model__optimizer=new_lr), {}), "evaluate")
    assert checkpoint_defaults(settings, "warm_start")["model"] == {"lookback": 4}
    assert checkpoint_defaults(settings, "resume", chosen=False)["model"]["optimizer"] == ADAMW


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("settings")
    done = run_main(["fit", *FIT, "--data.horizon", "5", "--model.optimizer.lr", "0.002"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _predict(cwd, *args):
    return run_main(["predict", "--trainer.accelerator", "cpu", *args], cwd)


@pytest.mark.parametrize(
    "spelling",
    [
        ["-c", "cfg.yaml"],
        ["--config=cfg.yaml"],
        ["--config", "cfg.yaml"],
    ],
)
def test_every_spelling_of_a_config_naming_the_checkpoint_is_seen(run, tmp_path, spelling):
    checkpoint = run_dir(run) / "checkpoints" / "last.ckpt"
    (tmp_path / "cfg.yaml").write_text(f"ckpt_path: {checkpoint}\ndata:\n  predict_set: latest\n")
    result = _predict(tmp_path, *spelling, "--output", "out.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "out.csv")
    assert len(frame) == 2 * 5 and frame["origin_date"].nunique() == 1  # the latest days, not the test set


def test_flags_with_equals_signs_are_seen(run, tmp_path):
    checkpoint = run_dir(run) / "checkpoints" / "last.ckpt"
    result = _predict(tmp_path, f"--ckpt_path={checkpoint}", "--data.predict_set=latest", "--output=out.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2 * 5
    section = _predict(tmp_path, "--ckpt_path", str(checkpoint), "--data={'horizon': 10}", "--output", "o.csv")
    assert section.returncode == 2 and "data.horizon 10 (the checkpoint has 5)" in section.stderr


def test_a_config_before_the_subcommand_is_checked_too(run, tmp_path):
    (tmp_path / "top.yaml").write_text("predict:\n  data:\n    horizon: 10\n")
    checkpoint = run_dir(run) / "checkpoints" / "last.ckpt"
    result = run_main(
        ["--config", "top.yaml", "predict", "--ckpt_path", str(checkpoint), "--output", "o.csv"], tmp_path
    )
    assert result.returncode == 2 and "data.horizon 10 (the checkpoint has 5)" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_the_optimizer_is_recorded_and_a_resume_cannot_change_it(run, tmp_path):
    last = torch.load(run_dir(run) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last[TRAINING_KEY]["optimizer"]["init_args"]["lr"] == 0.002  # --model.optimizer.lr with no config
    assert last[TRAINING_KEY]["lr_scheduler"]["class_path"] == "torch.optim.lr_scheduler.ExponentialLR"
    for change, message in (
        (["--model.optimizer.lr", "0.5"], "model.optimizer.lr 0.5 (the checkpoint has 0.002)"),
        (["--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.1"], "model.optimizer {"),
        (["--model.lr_scheduler.gamma", "0.5"], "model.lr_scheduler.gamma 0.5 (the checkpoint has 0.9)"),
        (["--model.lam_lr", "0.1"], "model.lam_lr 0.1 (the checkpoint has None)"),
        (["--model.init_lam", "1.0"], "model.init_lam 1.0 (the checkpoint has 0.01)"),
    ):
        args = ["fit", *FIT, "--data.horizon", "5", "--ckpt_path", str(run_dir(run) / "checkpoints" / "last.ckpt")]
        result = run_main([*args, *change, "--trainer.max_epochs", "2"], tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr and "--init_from" in result.stderr
        assert "Traceback" not in result.stderr
    # the optimizer's kernel is not its update: asking for the fused one is no conflict, and the resume uses it
    copy = tmp_path / "copy"  # the shared run stays as it is
    shutil.copytree(run, copy)
    args = ["fit", *FIT, "--data.horizon", "5", "--ckpt_path", str(run_dir(copy) / "checkpoints" / "last.ckpt")]
    resumed = run_main([*args, "--model.optimizer.fused", "true", "--trainer.max_epochs", "2"], copy)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = torch.load(run_dir(copy) / "checkpoints" / "last.ckpt", weights_only=True)
    assert again["epoch"] == 1 and again[TRAINING_KEY]["optimizer"]["init_args"]["fused"] is True


def test_a_warm_start_is_a_new_run_from_the_checkpoints_weights(run, tmp_path):
    source = run_dir(run) / "checkpoints" / "last.ckpt"
    before = torch.load(source, weights_only=True)
    # learning rate 0 (and so no weight decay): the new run's first epoch scores exactly the checkpoint's weights
    args = ["fit", *FIT, "--init_from", str(source), "--model.optimizer.lr", "0.0", "--model.lam_lr", "0.0"]
    result = run_main(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    after = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["epoch"] == 0 and after[INIT_FROM_KEY] == str(source)  # a fresh epoch count, and where it began
    assert after["datamodule_hyper_parameters"]["horizon"] == 5  # what the weights mean: the checkpoint's
    for key, value in before["state_dict"].items():
        torch.testing.assert_close(after["state_dict"][key], value, rtol=0, atol=0)
    theirs = json.loads((run_dir(run) / "fit_summary.json").read_text())["history"][0]["mae"]
    ours = json.loads((run_dir(tmp_path) / "fit_summary.json").read_text())["history"][0]["mae"]
    assert ours == pytest.approx(theirs, rel=1e-6)  # starts from the checkpoint's validation score
    assert f"init_from: {source}" in (run_dir(tmp_path) / "config.yaml").read_text()
    both = run_main(["fit", *FIT, "--init_from", str(source), "--ckpt_path", str(source)], tmp_path)
    assert both.returncode == 2 and "give one" in both.stderr


@pytest.mark.parametrize("written", ["2016-06-30", "'2016-06-30'"])
def test_a_plain_configs_dates_are_seen_as_the_parser_reads_them(run, tmp_path, written):
    """An unquoted YAML date is a date object to PyYAML and text to the parser: either way the plain config does
    not choose the checkpoint's data, and a warning says its value was replaced."""
    checkpoint = str(run_dir(run) / "checkpoints" / "last.ckpt")
    alone = _predict(tmp_path, "--ckpt_path", checkpoint, "--output", "alone.csv")
    (tmp_path / "plain.yaml").write_text(f"data:\n  val_end: {written}\n")
    with_config = _predict(tmp_path, "--ckpt_path", checkpoint, "--config", "plain.yaml", "--output", "cfg.csv")
    assert alone.returncode == with_config.returncode == 0, with_config.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "cfg.csv")) == len(pd.read_csv(tmp_path / "alone.csv"))
    assert "replace a config's" in with_config.stderr and "data.val_end 2016-06-30 -> 2016-12-31" in with_config.stderr


def test_a_warm_start_takes_its_data_settings_from_a_plain_config(run, tmp_path):
    (tmp_path / "plain.yaml").write_text("data:\n  batch_size: 32\n")
    source = str(run_dir(run) / "checkpoints" / "last.ckpt")
    result = run_main(["fit", *FIT, "--init_from", source, "--config", "plain.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["datamodule_hyper_parameters"]["batch_size"] == 32  # a new training run: the config counts


def test_one_batch_limits_are_the_integer_ones_last_given(tmp_path):
    from forecast.settings import one_batch_limits

    config = tmp_path / "c.yaml"
    config.write_text("trainer:\n  limit_val_batches: 1\n  limit_test_batches: 1.0\n")
    assert one_batch_limits(["fit", "--trainer.limit_train_batches", "1"]) == {"limit_train_batches"}
    assert one_batch_limits(["fit", "--trainer.limit_train_batches=1"]) == {"limit_train_batches"}
    assert one_batch_limits(["fit", "--trainer.limit_train_batches", "1.0"]) == set()
    assert one_batch_limits(["fit", "--trainer.limit_train_batches", "2"]) == set()
    assert one_batch_limits(["fit", "--config", str(config)]) == {"limit_val_batches"}  # YAML's 1.0 is a float
    # the last one given wins, as in the parser
    assert one_batch_limits(["fit", "--config", str(config), "--trainer.limit_val_batches", "0.5"]) == set()
    assert one_batch_limits(["fit", "--trainer.limit_val_batches", "0.5", "--config", str(config)]) == {
        "limit_val_batches"
    }
    # a config before the subcommand (its section), inline configs, the whole trainer group
    (tmp_path / "top.yaml").write_text("fit:\n  trainer:\n    limit_train_batches: 1\n")
    assert one_batch_limits(["--config", str(tmp_path / "top.yaml"), "fit"]) == {"limit_train_batches"}
    assert one_batch_limits(["--config", str(tmp_path / "top.yaml"), "test"]) == set()
    assert one_batch_limits(["fit", "--config", '{"trainer": {"limit_test_batches": 1}}']) == {"limit_test_batches"}
    assert one_batch_limits(["fit", "--trainer", '{"limit_val_batches": 1}']) == {"limit_val_batches"}
    assert one_batch_limits(["fit", "--config", str(tmp_path / "missing.yaml")]) == set()


def test_limit_train_batches_1_trains_one_batch_an_epoch(tmp_path):
    # jsonargparse hands int | float values over as floats: without the fix 1 was 1.0, every batch
    fit = run_main(["fit", *SMALL, "--trainer.limit_train_batches", "1", "--trainer.max_epochs", "2"], tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    last = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
