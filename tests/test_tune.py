"""``forecast tune``: the search-space file, the objective and its pruning against hand-made scores, resuming an
interrupted trial in its own folder, the report and ``best.yaml``, two workers on one storage, and bad options
failing in one line before any training."""

import json
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import CUSTOM
from helpers import run_main

from forecast.backtest.folds import FoldDates
from forecast.backtest.task import FoldResult, run_fold
from forecast.tune import report
from forecast.tune.space import SearchSpaceError, option_argument, read_space
from forecast.tune.study import enqueue_base, enqueue_interrupted, load_study, redact, seed_sampler
from forecast.tune.trials import FOLDER_NUMBER, INTERRUPTED, RESUMES, Search, folder_number, trial_folder

ROOT = Path(__file__).resolve().parents[1]

BRIEF = [
    "--data.source", "synthetic", "--data.synthetic_tickers", "2", "--trainer.max_epochs", "1",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2", "--trainer.enable_model_summary",
    "false", "--trainer.accelerator", "cpu", "--figures.windows", "0", *CUSTOM,
]  # fmt: skip

SPACE = """
model.optimizer.init_args.lr: {float: [1.0e-3, 1.0e-2], log: true}
model.decoder_channels: {categorical: [[8, 4], [8]]}
data.normalisation: {categorical: [last, zscore]}
model.kernel_size: {categorical: [3, 5]}
"""


def _space(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_search_space_gives_optuna_distributions(tmp_path):
    dims = {d.name: d for d in read_space(_space(tmp_path, SPACE + "trainer.max_epochs: {int: [1, 2]}\n"))}
    lr = dims["model.optimizer.init_args.lr"].distribution
    assert isinstance(lr, optuna.distributions.FloatDistribution) and (lr.low, lr.high, lr.log) == (1e-3, 1e-2, True)
    epochs = dims["trainer.max_epochs"].distribution
    assert isinstance(epochs, optuna.distributions.IntDistribution) and (epochs.low, epochs.high) == (1, 2)
    channels = dims["model.decoder_channels"]
    assert channels.structured and channels.distribution.choices == ("[8, 4]", "[8]")  # lists stored as JSON
    assert channels.corners() == [[8, 4], [8]] and dims["trainer.max_epochs"].corners() == [1, 2]
    assert not dims["data.normalisation"].structured and dims["data.normalisation"].corners() == ["last", "zscore"]
    assert option_argument("model.encoder_channels", [3, 6]) == "--model.encoder_channels=[3, 6]"
    assert option_argument("data.normalisation", "last") == "--data.normalisation=last"
    assert option_argument("model.init_lam", 0.5) == "--model.init_lam=0.5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model.dropout: {uniform: [0, 1]}", "give exactly one of"),
        ("model.dropout: {float: [0, 1], categorical: [0]}", "give exactly one of"),
        ("model.dropout: {float: [0.5, 0.1]}", "low 0.5 is above high 0.1"),
        ("model.init_lam: {float: [0, 1], log: true}", "a log scale needs low > 0"),
        ("model.dropout: {float: [0, .inf]}", "two finite floats"),
        ("trainer.max_epochs: {int: [1.5, 3]}", "two finite ints"),
        ("model.dropout: {float: [0, 1], scale: log}", "unknown key(s) ['scale']"),
        ("model.dropout: {categorical: []}", "non-empty list"),
        ("model.dropout: {categorical: [0.1, 0.1]}", "choices 0.1 and 0.1 are equal"),
        ("model.members: {categorical: [1, true]}", "choices 1 and True are equal"),
        ("model.members: {categorical: [2, 2.0]}", "choices 2 and 2.0 are equal"),
        ("trainer.max_epochs: {int: [1, 9], step: 1.5}", "step must be an integer > 0"),
        ("--model.dropout: {categorical: [0.1]}", "without '--'"),
        ("model.dropout: [0, 1", "not valid YAML"),
        ("[1, 2]", "must map option names to distributions"),
    ],
)
def test_bad_search_spaces_are_named(tmp_path, text, message):
    with pytest.raises(SearchSpaceError, match="search space") as error:
        read_space(_space(tmp_path, text))
    assert message in str(error.value)


class _TableExecutor:
    """An executor (what backtest and tune run their folds on) whose folds score from a table instead of training:
    ``scores[(lr, year)]`` (a missing entry: the fit recorded no score), 10 s each; ``interrupt_at`` years see Ctrl-C
    while their fold runs."""

    def __init__(self, scores, interrupt_at=()):
        self.scores, self.interrupt_at, self.ended = scores, set(interrupt_at), []

    def submit(self, fn, task):
        assert fn is run_fold
        lr = float(next(o for o in task.options if o.startswith("--model.optimizer.init_args.lr=")).split("=")[1])
        year, future = task.fold.dates.year, Future()
        if year in self.interrupt_at:
            future.set_exception(KeyboardInterrupt())
        else:
            score = self.scores.get((lr, year))
            scores = {} if score is None else {"best_val_rel_mae": score}
            future.set_result(FoldResult(task.fold, 0, scores, "", 10.0, []))
        return future

    def shutdown(self, cancel=False):
        self.ended.append(cancel)


def test_objective_is_the_mean_over_years_and_the_median_pruner_stops_a_bad_trial(tmp_path):
    _space(tmp_path, "model.optimizer.init_args.lr: {categorical: [0.1, 0.2, 0.3, 0.4, 0.5, 0.9]}")
    dims = read_space(tmp_path / "space.yaml")
    # five complete trials with first-year scores 0.95..0.99, then one whose first year (1.20) is above their median
    lrs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.9]
    scores = {(lr, 2015): 0.95 + 0.01 * i for i, lr in enumerate(lrs[:5])}
    scores |= {(lr, 2016): 1.0 for lr in lrs[:5]} | {(0.9, 2015): 1.20, (0.9, 2016): 0.5}
    study = load_study(optuna.storages.InMemoryStorage(), "s", {"fit": {}})
    for lr in lrs:
        study.enqueue_trial({"model.optimizer.init_args.lr": lr})
    search = Search(study, dims, [2015, 2016], tmp_path, (), seed=0)
    told = []
    search.run(6, 1, _TableExecutor(scores), told.append)
    trials = study.trials
    assert [t.number for t in told] == [0, 1, 2, 3, 4, 5]  # each trial told once, as it ended
    assert [t.value for t in trials[:5]] == pytest.approx([(0.95 + 0.01 * i + 1.0) / 2 for i in range(5)])
    assert trials[5].state == optuna.trial.TrialState.PRUNED and trials[5].user_attrs["pruned_after"] == 2015
    assert trials[5].intermediate_values == {0: pytest.approx(1.20)}  # the running mean after the first year
    rows = report.trial_rows(study, dims, [2015, 2016])
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4, 5]  # complete by objective, then pruned
    study.enqueue_trial({"model.optimizer.init_args.lr": 0.9}, user_attrs={"base_config": True})
    search.run(1, 1, _TableExecutor(scores), told.append)  # the same bad first year, but the base is the bar
    assert study.trials[6].state == optuna.trial.TrialState.COMPLETE and study.trials[6].value == pytest.approx(0.85)
    savings = report.pruning_savings(rows, [2015, 2016])  # 6 trials spent 5 x 20 + 10 s; one skipped fold of 10 s
    assert savings == pytest.approx({"spent_seconds": 110.0, "saved_seconds": 10.0, "saved_fraction": 10 / 120})


def test_trials_under_way_at_once_are_each_told_once(tmp_path):
    _space(tmp_path, "model.optimizer.init_args.lr: {categorical: [0.1, 0.2, 0.3, 0.4]}")
    dims = read_space(tmp_path / "space.yaml")
    study = load_study(optuna.storages.InMemoryStorage(), "s", {"fit": {}})
    scores = {(lr, y): lr + y - 2015 for lr in (0.1, 0.2, 0.3, 0.4) for y in (2015, 2016)}
    for lr in (0.1, 0.2, 0.3, 0.4):
        study.enqueue_trial({"model.optimizer.init_args.lr": lr})
    told = []
    Search(study, dims, [2015, 2016], tmp_path, (), seed=0).run(4, 3, _TableExecutor(scores), told.append)
    assert sorted(t.number for t in told) == [0, 1, 2, 3]
    assert [t.value for t in study.trials] == pytest.approx([0.6, 0.7, 0.8, 0.9])


def test_a_fit_without_a_score_fails_the_trial_and_ctrl_c_between_folds_stops_it(tmp_path):
    _space(tmp_path, "model.optimizer.init_args.lr: {categorical: [0.1, 0.2]}")
    dims = read_space(tmp_path / "space.yaml")
    scores = {(0.1, 2015): 0.9, (0.2, 2015): 0.9}  # no score for 2016 (e.g. validation off)
    study = load_study(optuna.storages.InMemoryStorage(), "s", {"fit": {}})
    search = Search(study, dims, [2015, 2016], tmp_path, (), seed=0)
    study.enqueue_trial({"model.optimizer.init_args.lr": 0.1})
    search.run(1, 1, _TableExecutor(scores), lambda told: None)
    failed = study.trials[0]
    assert failed.state == optuna.trial.TrialState.FAIL and failed.user_attrs["seconds"] == 20.0
    assert failed.user_attrs["fail_reason"].startswith("fold val2016_seed0: best validation relMAE is None")
    # Ctrl-C while the second year's fit runs: the trial is failed as interrupted, its first year kept, and the
    # folds under way are ended
    study.enqueue_trial({"model.optimizer.init_args.lr": 0.2})
    executor = _TableExecutor(scores, interrupt_at=[2016])
    with pytest.raises(KeyboardInterrupt):
        search.run(1, 1, executor, lambda told: None)
    stopped = study.trials[1]
    assert stopped.user_attrs["fail_reason"] == INTERRUPTED and stopped.user_attrs["seconds"] == 10.0
    assert "val_2015" in stopped.user_attrs and "val_2016" not in stopped.user_attrs
    assert executor.ended == [True]


def test_an_interrupted_trial_runs_again_first_in_its_own_folder(tmp_path):
    dims = read_space(_space(tmp_path))
    study = load_study(optuna.storages.InMemoryStorage(), "s", {"fit": {}})
    params = {"model.optimizer.init_args.lr": 0.002, "model.decoder_channels": "[8]"}
    params |= {"data.normalisation": "last", "model.kernel_size": 3}
    study.enqueue_trial(params, user_attrs={"base_config": True})

    def interrupted(trial):
        trial.set_user_attr(FOLDER_NUMBER, folder_number(trial))
        trial.set_user_attr("fail_reason", INTERRUPTED)
        for dim in dims:
            dim.sample(trial)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)

    interrupted(study.ask())
    assert enqueue_interrupted(study) == 1 and enqueue_interrupted(study) == 0  # queued once
    again = study.ask()
    assert again.number == 1 and again.user_attrs[RESUMES] == 0 and again.user_attrs["base_config"]
    assert {d.name: d.sample(again) for d in dims}["model.decoder_channels"] == [8]
    assert trial_folder(tmp_path, folder_number(again)) == tmp_path / "trials" / "0000"  # its finished folds kept
    interrupted(again)  # interrupted a second time: queued again, still for folder 0, still the base settings
    assert enqueue_interrupted(study) == 1
    third = study.ask()
    assert folder_number(third) == 0 and third.user_attrs["base_config"]
    assert {d.name: d.sample(third) for d in dims}["model.optimizer.init_args.lr"] == 0.002
    assert trial_folder(tmp_path, folder_number(study.ask())) == tmp_path / "trials" / "0003"


def test_the_base_settings_are_queued_first_where_the_space_holds_them(tmp_path):
    from forecast.tune.study import BASE_RUN

    dims = read_space(_space(tmp_path))
    settings = {"model": {"decoder_channels": [8], "kernel_size": 3, "optimizer": {"init_args": {"lr": 0.002}}}}
    settings |= {"data": {"normalisation": "last"}}
    study = load_study(optuna.storages.InMemoryStorage(), "s", {"fit": {}})
    queued = enqueue_base(study, dims, settings)  # every value inside the space: the study's first trial
    assert queued == {"model.decoder_channels": "[8]", "model.kernel_size": 3, "model.optimizer.init_args.lr": 0.002,
                      "data.normalisation": "last"}  # fmt: skip
    trial = study.ask()
    sampled = {d.name: d.sample(trial) for d in dims}
    assert trial.user_attrs["base_config"] and sampled["model.decoder_channels"] == [8]
    assert enqueue_base(study, dims, settings) == {}  # only on a new study
    # lr 0.5 is above the range and log is not a choice: no trial can run them, so the base runs beside the study
    outside = {**settings, "model": {**settings["model"], "optimizer": {"init_args": {"lr": 0.5}}}}
    outside["data"] = {"normalisation": "log"}
    study = load_study(optuna.storages.InMemoryStorage(), "t", {"fit": {}})
    assert enqueue_base(study, dims, outside) == {} and not study.trials
    assert study.user_attrs[BASE_RUN]["settings"]["model.optimizer.init_args.lr"] == 0.5


def test_a_study_with_other_settings_or_a_repeated_worker_seed_is_refused(tmp_path):
    from forecast.tune.study import TuneError

    storage = optuna.storages.InMemoryStorage()
    seed_sampler(load_study(storage, "s", {"fit": {"lr": 1}}), seed=0)
    with pytest.raises(TuneError, match=r"other settings \(fit.lr: 1 there, 2 now\)"):
        load_study(storage, "s", {"fit": {"lr": 2}})
    study = load_study(storage, "s", {"fit": {"lr": 1}})
    with pytest.raises(TuneError, match="give each worker its own --seed"):
        seed_sampler(study, seed=0)
    seed_sampler(study, seed=1)
    study.enqueue_trial({})
    study.tell(study.ask(), 1.0)
    seed_sampler(study, seed=0)  # a rerun with the same seed, once the study has grown: its own draws
    assert redact("postgresql://me:secret@db.example/optuna") == "postgresql://me:***@db.example/optuna"


def test_tune_end_to_end_writes_a_best_config_that_fit_accepts_and_adds_trials_when_rerun(tmp_path):
    _space(tmp_path)
    args = ["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "3", "--out", "tune", *BRIEF]
    first = run_main(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "tune"
    assert {"best.yaml", "tune.md", "tune.json", "tune.png", "study.db"} <= {p.name for p in out.iterdir()}
    assert first.stdout.count("\ntrial ") + first.stdout.startswith("trial ") == 3  # one line per trial
    result = json.loads((out / "tune.json").read_text())
    trials = result["trials"]
    assert len(trials) == 3 and all(t["state"] == "complete" for t in trials)
    assert [t["objective"] for t in trials] == sorted(t["objective"] for t in trials)  # best first
    for trial in trials:  # the objective is the mean of the folds' own fit summaries, read another way
        summaries = sorted((out / "trials" / f"{trial['number']:04d}").glob("runs/*/*/*/fit_summary.json"))
        scores = [json.loads(p.read_text())["best_val_rel_mae"] for p in summaries]
        assert len(scores) == 2 and trial["objective"] == pytest.approx(sum(scores) / 2)
        run = out / "trials" / f"{trial['number']:04d}" / "runs" / "val2017_seed0" / "lightning_logs" / "version_0"
        ran = yaml.safe_load((run / "config.yaml").read_text())  # what the fold's fit ran with
        assert ran["data"]["normalisation"] == trial["settings"]["data.normalisation"]
        assert ran["model"]["kernel_size"] == trial["settings"]["model.kernel_size"]
    (base,) = [t for t in trials if t["number"] == 0]  # the first trial runs the base settings where the space has them
    assert base["base_config"] and base["reason"] == "the base config's settings"
    assert base["settings"]["model.decoder_channels"] == [8, 4] and base["settings"]["model.kernel_size"] == 5
    assert base["settings"]["data.normalisation"] == "zscore"  # the DataModule's default
    assert result["base"]["objective"] == base["objective"]
    best = trials[0]
    assert result["best"]["number"] == best["number"]
    config = yaml.safe_load((out / "best.yaml").read_text())
    assert config["model"]["decoder_channels"] == best["settings"]["model.decoder_channels"]
    assert config["model"]["optimizer"]["init_args"]["lr"] == best["settings"]["model.optimizer.init_args.lr"]
    assert config["data"]["normalisation"] == best["settings"]["data.normalisation"]
    assert config["model"]["kernel_size"] == best["settings"]["model.kernel_size"]
    table = (out / "tune.md").read_text()
    assert f"**Best: trial {best['number']}, mean validation relMAE {best['objective']:.4f}**" in table

    from forecast.cli import ForecastCLI  # fit takes best.yaml as is, with the tuned values

    cli = ForecastCLI(args=["--config", str(out / "best.yaml"), "--trainer.logger", "false"], run=False)
    assert list(cli.model.hparams.decoder_channels) == best["settings"]["model.decoder_channels"]
    assert cli.datamodule.hparams.normalisation == best["settings"]["data.normalisation"]
    from forecast.backtest.walk import build_as_fit  # and backtest's checks pass on it, as they would before its folds

    settings = build_as_fit(["--config", str(out / "best.yaml")], FoldDates(2017)).settings
    assert settings["model"]["decoder_channels"] == best["settings"]["model.decoder_channels"]

    again = run_main([*args[:7], "1", *args[8:]], tmp_path)  # --trials 1: the study grows to 4 trials
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 trials run" in again.stdout
    assert len(json.loads((out / "tune.json").read_text())["trials"]) == 4

    other = run_main([*args, "--model.init_lam", "0.5"], tmp_path)  # other settings, same study: refused
    assert other.returncode == 2 and "was run with other settings (fit.model.init_lam" in other.stderr


def test_two_workers_share_one_storage(tmp_path):
    """Two commands, as on two machines (their own --out and --seed), one study in one database."""
    _space(tmp_path)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    base = [sys.executable, "-m", "forecast", "tune", "--search", "space.yaml", "--years", "2016", "2017"]
    workers = [
        subprocess.Popen(
            [*base, "--trials", "1", "--out", f"w{i}", "--seed", str(i), "--storage", storage, *BRIEF],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (0, 1)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="forecast", storage=storage)
    assert len(study.trials) == 2 and {t.number for t in study.trials} == {0, 1}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert sum(bool(t.user_attrs.get("base_config")) for t in study.trials) == 1  # one worker created the study
    folders = {t.user_attrs["folder"] for t in study.trials}
    assert len(folders) == 2 and all(Path(f).is_dir() and Path(f).parent.parent.name in ("w0", "w1") for f in folders)
    # the second to finish reports the whole study
    reports = [json.loads((tmp_path / f"w{i}" / "tune.json").read_text()) for i in (0, 1)]
    assert max(len(r["trials"]) for r in reports) == 2


@pytest.mark.parametrize(
    ("space", "options", "message"),
    [
        (SPACE, ["--years", "2016"], "--years needs two or more distinct validation years"),
        (SPACE, ["--years", "2003", "2016"], "year 2003: no train"),
        (SPACE, ["--years", "2016", "2017", "--data.val_end", "2016-12-31"], "--data.val_end is set for each fold"),
        (
            "trainer.max_epochs: {int: [1, 2]}",  # BRIEF gives --trainer.max_epochs 1
            ["--years", "2016", "2017"],
            "--trainer.max_epochs is given and the search space also names trainer.max_epochs",
        ),
        ("model.lookbak: {int: [1, 3]}", ["--years", "2016", "2017"], "model.lookbak = 1 is not accepted by fit"),
        ("data.normalisation: {categorical: [last, bogus]}", ["--years", "2016", "2017"], "= 'bogus' is not accepted"),
        ("data.val_end: {categorical: ['2016-12-31']}", ["--years", "2016", "2017"], "set for each fold by the tune"),
        ("model.dropout: {float: [0.2, 0.1]}", ["--years", "2016", "2017"], "low 0.2 is above high 0.1"),
        (
            "model.optimizer.init_args.lr: {float: [-1.0e-3, 1.0e-2]}",
            ["--years", "2016", "2017", "--config", str(ROOT / "configs" / "djia.yaml"), "--data.source", "synthetic"],
            "model.optimizer.init_args.lr = -0.001 is not accepted by fit: Invalid learning rate",
        ),
    ],
)
def test_bad_options_are_one_line_before_any_training(tmp_path, space, options, message):
    _space(tmp_path, space)
    result = run_main(["tune", "--search", "space.yaml", "--out", "tune", *options, *BRIEF], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "tune" / "trials").exists()  # no training started


def test_a_trial_whose_fit_fails_is_recorded_with_its_reason(tmp_path):
    _space(tmp_path, "data.channels: {categorical: [[Close, Bogus]]}")  # builds; the data has no such column
    result = run_main(["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "2", "--out", "tune",
                       *BRIEF], tmp_path)  # fmt: skip
    assert result.returncode == 2 and "no trial of the study has completed" in result.stderr
    trials = json.loads((tmp_path / "tune" / "tune.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["fail", "fail"]
    assert all(t["reason"].startswith("fold val2016_seed0 failed: synthetic: missing column(s) Bogus") for t in trials)
    assert "fold val2016_seed0 failed" in (tmp_path / "tune" / "tune.md").read_text()


def test_a_searched_window_length_the_years_cannot_hold_is_one_line(tmp_path):
    _space(tmp_path, "data.base_len: {int: [20, 5000]}")
    brief = [*BRIEF]
    del brief[brief.index("--data.base_len") : brief.index("--data.base_len") + 2]  # searched, so not given
    result = run_main(["tune", "--search", "space.yaml", "--years", "2016", "2017", "--out", "tune", *brief], tmp_path)
    assert (
        result.returncode == 2 and "windows of 5000 + 5 days" in result.stderr and "data.base_len 5000" in result.stderr
    )
    assert not (tmp_path / "tune").exists()


def test_fold_dates_of_a_trial_are_validation_only():
    fold = FoldDates(2011, validation_only=True)
    assert fold.arguments() == ["--data.train_end", "2010-12-31", "--data.val_end", "2011-12-31"]


def test_workers_creating_a_new_storage_at_once_both_open_it(tmp_path):
    """Two processes creating the tables of one new SQLite study at once: before the retry, 4 starts in 6 failed."""
    code = (
        "import sys; from forecast.tune.study import open_storage, load_study; "
        "load_study(open_storage(sys.argv[1]), 'forecast', {'fit': {}}); print('ok')"
    )
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        pair = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True) for _ in "ab"]
        assert [p.communicate(timeout=120)[0].strip() for p in pair] == ["ok", "ok"]


def test_help_lists_tune_and_its_options():
    top = subprocess.run([sys.executable, "-m", "forecast", "--help"], capture_output=True, text=True)
    assert top.returncode == 0 and "  tune " in top.stdout
    done = subprocess.run([sys.executable, "-m", "forecast", "tune", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and all(f"--{o}" in done.stdout for o in ("search", "years", "trials", "storage"))
    assert "optuna" not in subprocess.run(
        [sys.executable, "-c", "import sys, forecast, forecast.main; print(sorted(sys.modules))"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip


def test_every_fit_of_a_trial_takes_the_configs_seed(tmp_path):
    from forecast.tune.study import SETTINGS_ATTR

    _space(tmp_path, "model.dropout: {float: [0.0, 0.1]}")
    args = ["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "1", "--out", "tune"]
    done = run_main([*args, *BRIEF, "--seed_everything", "7"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every fit seeded 7" in done.stdout
    run = tmp_path / "tune" / "trials" / "0000" / "runs" / "val2016_seed7" / "lightning_logs" / "version_0"
    ran = yaml.safe_load((run / "config.yaml").read_text())
    assert ran["seed_everything"] == 7 and ran["test_after_fit"] is False
    study = optuna.load_study(study_name="forecast", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    assert study.user_attrs[SETTINGS_ATTR]["fit_seed"] == 7
    other = run_main([*args, *BRIEF, "--seed_everything", "8"], tmp_path)  # another seed: another search
    assert other.returncode == 2 and "fit_seed: 7 there, 8 now" in other.stderr


def test_best_yaml_is_fits_own_parse_so_a_shorthand_key_lands_where_fit_reads_it(tmp_path):
    from forecast.backtest.walk import build_as_fit
    from forecast.cli import ForecastCLI

    args = ["--config", "configs/djia.yaml", "--data.source", "synthetic", "--model.optimizer.lr=0.02"]
    config = build_as_fit(args, FoldDates(2016, validation_only=True)).config(args)
    assert config["model"]["optimizer"]["init_args"]["lr"] == 0.02 and "lr" not in config["model"]["optimizer"]
    report.write_best(tmp_path / "best.yaml", config, "a header\nof two lines")
    text = (tmp_path / "best.yaml").read_text()
    assert text.startswith("# a header\n# of two lines\n")
    cli = ForecastCLI(args=["--config", str(tmp_path / "best.yaml"), "--trainer.logger", "false"], run=False)
    optimizer = cli.model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == 0.02


def test_a_storage_that_cannot_be_opened_is_one_line_and_leaves_no_folder(tmp_path):
    _space(tmp_path)
    options = ["--years", "2016", "2017", "--out", "tune", "--storage", "nosuchdb://host/x", *BRIEF]
    result = run_main(["tune", "--search", "space.yaml", *options], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the study storage nosuchdb://host/x")
    assert not (tmp_path / "tune").exists()


def test_trials_0_on_a_folder_without_a_study_is_one_line_and_writes_nothing(tmp_path):
    _space(tmp_path)
    result = run_main(["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "0", "--out", "tune",
                       *BRIEF], tmp_path)  # fmt: skip
    assert result.returncode == 2 and "--trials 0 rewrites the report of a study" in result.stderr
    assert not (tmp_path / "tune").exists()


def test_a_base_config_outside_the_space_runs_as_configured_beside_the_study(tmp_path):
    _space(tmp_path, "model.dropout: {float: [0.1, 0.2]}")  # the base config's dropout, 0.0, lies outside
    args = ["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", "1", "--out", "tune", *BRIEF]
    done = run_main(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "tune" / "tune.json").read_text())
    base = result["base"]
    assert base["number"] is None and base["settings"] == {"model.dropout": 0.0}
    (trial,) = result["trials"]
    assert 0.1 <= trial["settings"]["model.dropout"] <= 0.2 and not trial["base_config"]
    runs = tmp_path / "tune" / "base" / "runs"
    scores = {y: json.loads((runs / f"val{y}_seed0" / "lightning_logs" / "version_0" / "fit_summary.json").read_text())
              for y in (2016, 2017)}  # fmt: skip
    assert base["years"] == {str(y): s["best_val_rel_mae"] for y, s in scores.items()}
    ran = yaml.safe_load((runs / "val2016_seed0" / "lightning_logs" / "version_0" / "config.yaml").read_text())
    assert ran["model"]["dropout"] == 0.0  # exactly as configured
    assert (
        "The base config as configured (run beside the study: outside the space; model.dropout 0)"
        in (tmp_path / "tune" / "tune.md").read_text()
    )


def test_asks_on_one_sqlite_file_wait_for_each_other(tmp_path):
    """SQLite cannot lock the queued trial's row: a second worker's ask waits for the first's (else both could pop
    the same queued trial and run it twice)."""
    from forecast.tune.study import open_storage
    from forecast.tune.trials import ask_lock

    url = f"sqlite:///{tmp_path / 'study.db'}"
    child = (
        "from forecast.tune.study import open_storage\nfrom forecast.tune.trials import ask_lock\n"
        f"with ask_lock(open_storage({url!r})):\n    print('asked', flush=True)\n"
    )
    with ask_lock(open_storage(url)):
        worker = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        assert worker.poll() is None  # waiting for the lock this process holds
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0 and out.strip() == "asked"
