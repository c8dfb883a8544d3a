"""Backtests on a real Ray cluster of two worker nodes on this machine (``ray.cluster_utils.Cluster``, loopback
only): the same predictions as the local executor, the data read once, and a fold whose node is removed mid-run
run again to the same result."""

import os
import threading
import time

import pandas as pd
import pytest
from conftest import CUSTOM
from helpers import require

import forecast

BRIEF = [
    "--data.source", "synthetic", "--data.synthetic_tickers", "2", "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", "--trainer.enable_model_summary",
    "false", "--trainer.accelerator", "cpu", "--figures.windows", "0", *CUSTOM,
]  # fmt: skip
YEARS = [2016, 2017]


@pytest.fixture(scope="module")
def cluster():
    """A head node that runs no task (the driver's) and two worker nodes of one CPU each."""
    # every Ray process on the loopback address (read when Ray is imported): a test starts servers on this machine only
    before = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    require("ray", "ray")
    from ray.cluster_utils import Cluster

    store = 80 * 1024 * 1024
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": store},
    )
    workers = [cluster.add_node(num_cpus=1, object_store_memory=store) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        cluster.shutdown()
        if before is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = before


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The same backtest with the default executor: the reference."""
    out = tmp_path_factory.mktemp("local") / "bt"
    return forecast.backtest.run(BRIEF, years=YEARS, out=out, jobs=2)


def _predictions(out, year):
    return pd.read_csv(out / "predictions" / f"{year}_seed0.csv")


def test_a_backtest_on_two_nodes_equals_the_local_one_and_reads_the_data_once(cluster, local, tmp_path):
    head, _ = cluster
    done = forecast.backtest.run(BRIEF, years=YEARS, out=tmp_path / "bt", jobs=2, executor="ray", address=head.address)
    assert local.data_reads == 1 and done.data_reads == 1  # read by the driver, handed to every fold
    for year in YEARS:
        pd.testing.assert_frame_equal(_predictions(done.out, year), _predictions(local.out, year))
    assert done.result["summary"]["years"] == local.result["summary"]["years"]


def test_a_fold_whose_node_is_removed_runs_again_to_the_same_result(cluster, local, tmp_path):
    head, workers = cluster
    slow = [*BRIEF, "--trainer.max_epochs", "30", "--trainer.limit_train_batches", "50"]
    reference = forecast.backtest.run(slow, years=YEARS, out=tmp_path / "reference", jobs=2)
    out, outcome = tmp_path / "bt", {}

    def backtest():
        try:
            outcome["result"] = forecast.backtest.run(
                slow, years=YEARS, out=out, jobs=2, executor="ray", address=head.address
            )
        except BaseException as exc:  # reported by the test's own thread
            outcome["error"] = exc

    thread = threading.Thread(target=backtest)
    thread.start()
    deadline = time.monotonic() + 120
    runs = [out / "runs" / f"{year}_seed0" / "lightning_logs" / "version_0" for year in YEARS]
    while not all((run / "checkpoints" / "last.ckpt").is_file() for run in runs):  # both folds fitting
        assert time.monotonic() < deadline and thread.is_alive(), "the two folds did not both reach their first epoch"
        time.sleep(0.05)
    assert not any((run / "fit_summary.json").is_file() for run in runs), "a fit ended before the node could go"
    head.remove_node(workers[1], allow_graceful=False)  # one of the two folds under way loses its node
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    attempts = [log.read_text().count("$ python -m forecast fit") for log in sorted(out.glob("runs/*/fold.log"))]
    assert sorted(attempts) == [1, 2], attempts  # the fold of the removed node started twice
    resumed = next(log for log in out.glob("runs/*/fold.log") if log.read_text().count("forecast fit") == 2)
    assert "--ckpt_path" in resumed.read_text().split("$ python -m forecast fit")[2].splitlines()[0]
    for year in YEARS:  # run again (from its last checkpoint: the folder is on a filesystem both nodes see)
        pd.testing.assert_frame_equal(_predictions(out, year), _predictions(reference.out, year))


def test_a_search_on_the_cluster_runs_each_trials_folds_as_tasks(cluster, tmp_path):
    head, _ = cluster
    import forecast.tune

    (tmp_path / "space.yaml").write_text("model.dropout: {float: [0.0, 0.2]}\n")
    search = forecast.tune.run(
        BRIEF, search=tmp_path / "space.yaml", years=YEARS, trials=2, jobs=2, out=tmp_path / "tune",
        executor="ray", address=head.address,
    )  # fmt: skip
    trials = search.result["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete"]
    assert all(set(t["years"]) == {"2016", "2017"} and None not in t["years"].values() for t in trials)
