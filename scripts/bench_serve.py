"""Load test of ``forecast serve``: N concurrent clients, each in its own process with a keep-alive connection,
POST the same T-ticker request back to back for a fixed time; requests/s, p50/p99 latency and errors.

    python scripts/bench_serve.py --ckpt_path runs/.../best.ckpt [--clients 16] [--seconds 20] [--tickers 31]
    python scripts/bench_serve.py --echo          # the same load against a LitServe API that only echoes its input

The server is started here (``python -m forecast serve``, or the echo API) and stopped at the end. The clients
share the machine with the server: on a 2-core machine they take a good part of it, as a real client would not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def echo_server(port: int) -> None:
    """A LitServe API that only echoes its input: the floor a served model cannot go below."""
    import litserve as ls

    ls.LitServer(Echo(), accelerator="cpu").run(port=port, generate_client_file=False, log_level="warning")


try:
    import litserve

    class Echo(litserve.LitAPI):
        """Answers each request with its own body (a module-level class: LitServe pickles it to its worker)."""

        def setup(self, device: str) -> None:
            pass

        def predict(self, x: dict) -> dict:
            return x

except ImportError:  # the forecast service alone needs no litserve in this process
    pass


def client(port: int, body: bytes, until: float, queue: multiprocessing.Queue) -> None:
    latencies, errors = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - start)
        errors += not ok
    queue.put((latencies, errors))


def wait_until_up(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server ended: {process.communicate()[1][-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_path", help="the checkpoint to serve")
    parser.add_argument("--echo", action="store_true", help="serve an echo API instead (LitServe's floor)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tickers", type=int, default=31)
    parser.add_argument("--base_len", type=int, default=30)
    parser.add_argument("--serve_options", default="", help="more options of forecast serve, one string")
    args = parser.parse_args()
    if not args.echo and not args.ckpt_path:
        parser.error("give --ckpt_path, or --echo")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if args.echo:
        command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
                   f"from bench_serve import echo_server; echo_server({port})"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "forecast", "serve", "--ckpt_path", args.ckpt_path, "--port", str(port),
                   *args.serve_options.split()]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(port, server)
        prices = {f"T{k:02d}": [100.0 + 0.1 * i + k for i in range(args.base_len)] for k in range(args.tickers)}
        body = json.dumps({"prices": prices}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        first = connection.getresponse()
        assert first.status == 200, first.read()[:500]
        first.read()
        queue: multiprocessing.Queue = multiprocessing.Queue()
        until = time.monotonic() + args.seconds
        clients = [multiprocessing.Process(target=client, args=(port, body, until, queue)) for _ in range(args.clients)]
        for process in clients:
            process.start()
        results = [queue.get() for _ in clients]
        for process in clients:
            process.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    latencies = sorted(t for part, _ in results for t in part)
    errors = sum(e for _, e in results)

    def quantile(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    what = "echo API" if args.echo else f"forecast serve {args.ckpt_path} {args.serve_options}".strip()
    print(f"{what}: {args.clients} clients x {args.seconds:.0f} s, {args.tickers}-ticker requests")
    print(f"requests/s {len(latencies) / args.seconds:.0f}  p50 {quantile(0.5):.1f} ms  p99 {quantile(0.99):.1f} ms  "
          f"errors {errors} of {len(latencies)}")  # fmt: skip


if __name__ == "__main__":
    main()
