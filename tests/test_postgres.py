"""A search shared by workers through a real PostgreSQL server (``pgserver`` starts one offline): every trial counted
once, and the trial of a worker that was killed run again, in its own folder, when a worker starts the next one."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import require
from test_tune import BRIEF

SPACE = "model.dropout: {float: [0.0, 0.2]}\n"


@pytest.fixture
def postgres(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # where pgserver's platformdirs look, on a machine with none
    pgserver = require("pgserver", "testing")
    require("psycopg2", "postgres")
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:  # SQLAlchemy 2 names the driver; the server listens on a socket in its folder, not on the network
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        server.cleanup()


def _worker(tmp_path, url, name, seed, trials):
    args = ["tune", "--search", "space.yaml", "--years", "2016", "2017", "--trials", str(trials), "--out", name]
    args += ["--seed", str(seed), "--storage", url, "--heartbeat", "1", *BRIEF]
    return subprocess.Popen(
        [sys.executable, "-m", "forecast", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


def test_two_workers_on_postgresql_count_every_trial_once_and_resume_a_killed_ones_trial(tmp_path, postgres):
    import optuna

    (tmp_path / "space.yaml").write_text(SPACE)
    killed = _worker(tmp_path, postgres, "a", seed=0, trials=1)
    other = _worker(tmp_path, postgres, "b", seed=1, trials=2)
    deadline = time.monotonic() + 180
    while not list((tmp_path / "a").glob("trials/*/runs/*/lightning_logs/version_0/checkpoints/last.ckpt")):
        assert time.monotonic() < deadline and killed.poll() is None, "worker a never got into its first fit"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the worker and its fit processes, as a lost machine
    killed.wait()
    output = other.communicate(timeout=300)[0]
    assert other.returncode == 0, output[-3000:]
    time.sleep(3.5)  # the killed worker's heartbeat is stale after 3 x 1 s
    again = _worker(tmp_path, postgres, "a", seed=2, trials=1)  # the same command again, a new seed
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name="forecast", storage=postgres)
    states = [t.state.name for t in study.trials]
    assert sorted(states) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"], states
    lost = next(t for t in study.trials if t.state.name == "FAIL")
    retried = [t for t in study.trials if t.user_attrs.get("folder_number") == lost.number and t.number != lost.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"  # run again once, in the lost trial's folder
    assert retried[0].params == lost.params
    # whichever worker started a trial first once its heartbeat was stale ran it, in that worker's folder of that number
    assert retried[0].user_attrs["folder"].endswith(f"/trials/{lost.number:04d}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len({t.user_attrs["folder_number"] for t in complete}) == 3  # no trial counted twice
    assert sum(bool(t.user_attrs.get("base_config")) for t in study.trials) <= 2  # queued once (and its retry)
