"""The exported files and the service against ``predict``, on a user's checkpoint and data: ``python -m forecast
predict --data.predict_set latest`` writes the forecasts of each ticker's latest window; the same windows' closes go
through the ``pt2`` file (torch alone), the ``onnx`` file (onnxruntime) and ``forecast serve`` (HTTP); the largest
relative difference of each from ``predict`` is printed, and the script fails above 1e-5.

    python scripts/check_serving.py --ckpt_path runs/.../best.ckpt --data all_stocks_2006-01-01_to_2018-01-01.csv.gz
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

TOLERANCE = 1e-5


def forecast_cli(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "forecast", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"python -m forecast {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def served(ckpt: str, closes: dict[str, list[float]], cwd: Path) -> dict[str, list[float]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "forecast", "serve", "--ckpt_path", ckpt, "--port", str(port)]
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("POST", "/predict", json.dumps({"prices": closes}),
                                   {"Content-Type": "application/json"})  # fmt: skip
                response = connection.getresponse()
                return json.loads(response.read())["forecasts"]
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"forecast serve ended: {server.communicate()[1][-2000:]}") from None
                time.sleep(0.3)
        raise SystemExit("forecast serve did not start")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--data", required=True, help="the price file the checkpoint's config reads")
    args = parser.parse_args()
    ckpt, data = str(Path(args.ckpt_path).resolve()), str(Path(args.data).resolve())
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        forecast_cli("predict", "--ckpt_path", ckpt, "--data.source", "csv", "--data.path", data,
                     "--data.predict_set", "latest", "--output", "latest.csv", cwd=work)  # fmt: skip
        expected = pd.read_csv(work / "latest.csv")
        for fmt in ("pt2", "onnx"):
            forecast_cli("export", "--ckpt_path", ckpt, "--output", f"model.{fmt}", cwd=work)
        extra = {"forecast.json": ""}
        program = torch.export.load(str(work / "model.pt2"), extra_files=extra).module()
        spec = json.loads(extra["forecast.json"])
        if spec["input"]["name"] != "closes":
            raise SystemExit("this check sends closes alone: use a checkpoint of a [Close] model")
        import forecast

        # the closes as the reader gives them (cleaned, the checkpoint's tickers), each ticker's last base_len
        model = forecast.load(ckpt)
        frame = pd.read_csv(data, usecols=["Date", "Close", "Name"]).dropna()
        names = sorted(expected["Name"].unique())
        length = spec["base_len"]
        rows = [frame[frame["Name"] == name].sort_values("Date")["Close"].tail(length).to_numpy() for name in names]
        closes = np.stack(rows).astype(np.float32)  # (B, L)
        want = np.stack([expected[expected["Name"] == n].sort_values("step")["forecast"].to_numpy() for n in names])
        with torch.no_grad():
            got = {"pt2": program(torch.from_numpy(closes)).numpy()}
        got["onnx"] = forecast.export.run_onnx(work / "model.onnx", closes)
        answer = served(ckpt, {n: r.tolist() for n, r in zip(names, closes, strict=True)}, work)
        got["serve"] = np.stack([answer[n] for n in names])
        print(f"{len(names)} tickers x {model.horizon} days, latest windows ending {expected['origin_date'].max()}")
        worst = 0.0
        for kind, values in got.items():
            rel = float(np.max(np.abs(values - want) / np.abs(want)))
            worst = max(worst, rel)
            print(f"{kind:>5} vs predict: max relative difference {rel:.2e}")
        if worst > TOLERANCE:
            raise SystemExit(f"differences above {TOLERANCE:g}")


if __name__ == "__main__":
    main()
