"""``forecast serve``: a real server, started as a user starts it and asked over HTTP — its forecasts are
``predict``'s, concurrent requests are answered each with its own tickers, a malformed request is a 4xx with one
message, and SIGTERM ends it with 143 and no process left behind."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import require, run_dir, run_main

import forecast

BRIEF = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
         "--trainer.enable_progress_bar", "false", "--test_after_fit", "false", "--data.base_len", "20",
         "--data.horizon", "5", "--model.lookback", "4", "--model.encoder_channels", "[3, 6]",
         "--model.quantiles", "[0.1, 0.5, 0.9]"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory, small_panel):
    require("litserve", "serve")
    root = tmp_path_factory.mktemp("serve")
    small_panel.to_csv(root / "prices.csv", index=False)
    result = run_main(["fit", "--data.source", "csv", "--data.path", "prices.csv", *BRIEF], root)
    assert result.returncode == 0, result.stderr[-3000:]
    port = _free_port()
    command = [sys.executable, "-m", "forecast", "serve", "--ckpt_path", "best", "--port", str(port), "--host",
               "127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as health:
                if health.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"the server did not start: {process.communicate()[1][-3000:]}")
    yield {"url": f"http://127.0.0.1:{port}/predict", "process": process, "root": root}
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def _request(panel, names, base_len, last_date=None) -> dict:
    closes = {n: panel[panel["Name"] == n].sort_values("Date")["Close"].tail(base_len).tolist() for n in names}
    body = {"prices": closes}
    return body | ({"last_date": last_date} if last_date else {})


def test_served_forecasts_are_predicts(server, small_panel):
    model = forecast.load(run_dir(server["root"]) / "checkpoints" / "last.ckpt")
    expected = model.predict(small_panel, at="latest")
    names = sorted(small_panel["Name"].unique())
    last = str(small_panel["Date"].max())[:10]
    status, answer = _post(server["url"], json.dumps(_request(small_panel, names, 20, last)).encode())
    assert status == 200, answer
    assert sorted(answer["forecasts"]) == names
    for name in names:
        rows = expected[expected["Name"] == name].sort_values("step")
        np.testing.assert_allclose(answer["forecasts"][name], rows["forecast"], rtol=1e-5)
        for level in ("0.1", "0.5", "0.9"):
            np.testing.assert_allclose(answer["quantiles"][name][level], rows[f"q{level}"], rtol=1e-5)
    assert answer["target_dates"] == [str(d)[:10] for d in rows["target_date"]]


def test_the_serving_page_client_runs_against_the_server(server):
    """docs/serving.md's client, as written but for the server's address: its first day and forecasts print."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
    client = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)[1]
    assert "http://localhost:8000/predict" in client
    client = client.replace("http://localhost:8000/predict", server["url"])
    result = subprocess.run([sys.executable, "-c", client], cwd=server["root"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("2018-01-02 {'SYN00': ")


def test_concurrent_requests_each_get_their_own_answer_and_a_bad_one_fails_alone(server, small_panel):
    names = sorted(small_panel["Name"].unique())
    # requests of one, two or three tickers, every fourth one malformed (a close too few)
    bodies = []
    for k in range(48):
        body = _request(small_panel, names[k % len(names) :][: 1 + k % 3], 20)
        if k % 4 == 3:
            body["prices"][names[k % len(names)]] = body["prices"][names[k % len(names)]][1:]
        bodies.append(json.dumps(body).encode())
    alone = [_post(server["url"], body) for body in bodies]
    with ThreadPoolExecutor(12) as pool:  # batched by the server: each answer must still be its own request's
        answers = list(pool.map(lambda body: _post(server["url"], body), bodies))
    for k, (status, answer) in enumerate(answers):
        assert status == (422 if k % 4 == 3 else 200), answer
        if status != 200:
            assert answer == alone[k][1]  # its own message, not another request's
            continue
        assert (
            sorted(answer["forecasts"]) == sorted(json.loads(bodies[k])["prices"]) == sorted(alone[k][1]["forecasts"])
        )
        for name, path in answer["forecasts"].items():  # float32 kernels of another batch size: a few ulps apart
            np.testing.assert_allclose(path, alone[k][1]["forecasts"][name], rtol=1e-6)
            for level, values in answer["quantiles"][name].items():
                np.testing.assert_allclose(values, alone[k][1]["quantiles"][name][level], rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [("1e39", "outside 1e-30 .. 1e+30"), ("1" + "0" * 400, "outside 1e-30 .. 1e+30"), ("1e-40", "outside")],
)
def test_numbers_outside_float32_are_refused(server, value, message):
    body = b'{"prices": {"A": [' + b"10.0, " * 19 + value.encode() + b"]}}"
    status, answer = _post(server["url"], body)
    assert status == 422 and message in answer["detail"], answer


def test_a_last_date_with_a_time_and_offset_is_its_day(server, small_panel):
    names = sorted(small_panel["Name"].unique())[:1]
    status, answer = _post(
        server["url"], json.dumps(_request(small_panel, names, 20, "2017-12-29T10:00:00+05:00")).encode()
    )
    assert status == 200 and answer["target_dates"][0] == "2018-01-02", answer


def test_one_request_at_a_time_without_batching(server, small_panel):
    """--max_batch_size 1: LitServe hands the API one request, not a list (the API itself, without HTTP)."""
    from forecast.serve.api import ForecastAPI

    api = ForecastAPI(str(run_dir(server["root"]) / "checkpoints" / "last.ckpt"), max_batch_size=1)
    api.setup("cpu")
    names = sorted(small_panel["Name"].unique())
    good = api.encode_response(api.predict(api.decode_request(_request(small_panel, names, 20))))
    assert sorted(good["forecasts"]) == names
    bad = api.encode_response(api.predict(api.decode_request({"prices": {}})))
    assert bad.status_code == 422 and b"'prices' must be an object" in bad.body


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "the body must be a JSON object"),
        (b'{"prices": {}}', "text/plain", 400, "Content-Type: application/json"),
        (b"[1, 2]", "application/json", 400, "the body must be a JSON object"),
        (b"{}", "application/json", 422, "no 'prices' in the request"),
        (b'{"prices": [1, 2]}', "application/json", 422, "'prices' must be an object of tickers to closes"),
        (b'{"prices": {"A": [1.0, 2.0]}}', "application/json", 422, "prices['A'] has 2 values; the model needs"),
        (b'{"prices": {"A": "up"}}', "application/json", 422, "prices['A'] must be a list of 20 numbers"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b'"x"]}}', "application/json", 422, "prices['A'][19] is 'x'"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b"NaN]}}", "application/json", 422, "must be finite"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b"-3]}}", "application/json", 422, "Close must be positive"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b'1]}, "at": 1}', "application/json", 422, "unknown field(s) 'at'"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b'1]}, "last_date": "2017-12-30"}', "application/json", 422,
         "not a trading session of XNYS (a Saturday); the session before it is 2017-12-29"),
        (b'{"prices": {"A": [' + b"1.0, " * 19 + b'1]}, "last_date": "soon"}', "application/json", 422,
         "'last_date' must be a date"),
    ],
)  # fmt: skip
def test_a_malformed_request_is_a_4xx_with_one_message(server, body, content_type, status, message):
    got, answer = _post(server["url"], body, content_type)
    assert got == status, answer
    assert list(answer) == ["detail"] and isinstance(answer["detail"], str) and "\n" not in answer["detail"]
    assert message in answer["detail"], answer["detail"]


def test_sigterm_stops_the_server_with_143_and_no_process_left(server):
    process = server["process"]
    group = process.pid
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: terminated (SIGTERM); the service stopped, its worker processes with it"
    )
    assert "Traceback" not in stderr
    time.sleep(1)
    alive = subprocess.run(["ps", "-o", "stat=", "-g", str(group)], capture_output=True, text=True).stdout.split()
    assert all(state.startswith("Z") for state in alive), alive  # zombies are dead, waiting for init to reap them
