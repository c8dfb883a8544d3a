"""``python -m forecast serve``: a checkpoint as an HTTP forecast service (LitServe).

python -m forecast serve --ckpt_path best [--port 8000]
curl -X POST localhost:8000/predict -d '{"prices": {"AAPL": [170.1, ..., 169.2]}, "last_date": "2017-12-29"}'
"""

from __future__ import annotations

import argparse
import os
import signal

from forecast.errors import UserError
from forecast.parsers import CommandParser, add_checkpoint_options
from forecast.signals import Interrupted, Terminated


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m forecast serve",
        description='Serve a checkpoint\'s forecasts over HTTP: POST /predict with {"prices": {"AAPL": [closes, '
        'oldest first], ...}} (each ticker\'s last base_len closes; optionally "last_date" for target dates); GET '
        "/health. Concurrent requests are batched. docs/serving.md.",
    )
    add_checkpoint_options(parser)
    parser.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=("127.0.0.1", "0.0.0.0", "::"),
        help="127.0.0.1 (default): this machine only; 0.0.0.0 or ::, every interface (other machines, a container). "
        "The service has no authentication: put it behind one that has",
    )
    parser.add_argument("--workers", type=int, default=1, help="inference processes (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each inference process (default 1)")
    parser.add_argument("--max_batch_size", type=int, default=16, help="requests batched into one forward (16)")
    return parser


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if not 1024 <= args.port <= 65535:
        raise UserError(f"--port must be from 1024 to 65535; got {args.port}")
    if min(args.workers, args.threads, args.max_batch_size) < 1:
        raise UserError("--workers, --threads and --max_batch_size must be at least 1")
    _check_port(args.host, args.port)
    try:
        from forecast.serve.api import build_server
    except ImportError as exc:
        raise UserError(f"forecast serve needs {exc.name}: pip install 'forecast[serve]'") from exc
    from forecast.api import load
    from forecast.export.program import PriceForecaster

    loaded = load(args.ckpt_path, args.root)  # a bad checkpoint is one line here, not a worker that fails to start
    PriceForecaster.of(loaded)  # what cannot be served (pool: batch, ...) is refused here, in one line
    server = build_server(str(loaded.path), args.workers, args.threads, args.max_batch_size)
    print(f"serving {loaded.path} at http://{args.host}:{args.port}/predict (GET /health; Ctrl-C stops)", flush=True)
    received: list[int] = []
    pid = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != pid:  # a forked HTTP worker inherits this handler: uvicorn ends it on its own
            return
        # LitServe shuts its processes down cleanly on a KeyboardInterrupt only; the signal's exit code comes after
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.run(port=args.port, host=args.host, generate_client_file=False, log_level="warning")
    if received:
        raise Terminated() if received[0] == signal.SIGTERM else Interrupted()


def _check_port(host: str, port: int) -> None:
    """A port another process listens on is one line now, not a server that starts its workers and then fails."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
