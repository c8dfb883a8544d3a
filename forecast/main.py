"""``python -m forecast COMMAND``: the commands, their help, and the dispatch to the one that runs.

The top-level ``--help`` is answered here without importing torch or Lightning; ``fit``, ``validate``, ``test``
and ``predict`` are LightningCLI's (:mod:`forecast.cli`), ``backtest`` and ``tune`` have their own parsers
(:mod:`forecast.backtest.cli`, :mod:`forecast.tune.cli`). How a command ends (exit codes, one-line errors) is
:func:`forecast.terminal.run`.
"""

from __future__ import annotations

import os
import sys

from forecast import terminal

DEBUG_ENV = "FORECAST_DEBUG"
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
COMMANDS = {
    "fit": "train a model (a new run, --ckpt_path to resume one, --init_from for a warm start)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split against the baselines",
    "predict": "forecast with a checkpoint into a CSV file (the test windows, or the latest days)",
    "backtest": "walk-forward test years: fits, scores against the best simple baseline, DM tests, signal",
    "tune": "hyperparameter search with Optuna, each trial scored on validation years only",
}
HELP = "\n".join(
    [
        "usage: python -m forecast COMMAND [options]   (python -m forecast COMMAND --help: its options)",
        "",
        "Stock price forecasts from a 1D-CNN with an implicit ridge-regression layer, on PyTorch Lightning.",
        "",
        "commands:",
        *(f"  {name:<10} {text}" for name, text in COMMANDS.items()),
        "",
        "A config file before the command (python -m forecast --config top.yaml fit) holds sections per command.",
        "--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices.",
    ]
)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``python -m forecast``: exit 0 when done, 2 with one line for a problem the user can fix,
    130 after Ctrl-C, 1 with the traceback for an internal failure."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP, file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else terminal.EXIT_USER_ERROR)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # DDP launches this command again in child processes
    name = next((a for a in argv if a in COMMANDS), "")
    terminal.configure(debug, subcommand=name)
    saved_argv = sys.argv
    sys.argv = [sys.argv[0], *argv]  # DDP re-launches sys.argv in its child processes
    try:
        terminal.run(lambda: _dispatch(argv), name, debug)
    finally:
        sys.argv = saved_argv


def _dispatch(argv: list[str]) -> None:
    if argv[0] == "backtest":
        from forecast.backtest.cli import backtest

        backtest(argv[1:])
    elif argv[0] == "tune":
        from forecast.tune.cli import tune

        tune(argv[1:])
    else:
        from forecast.cli import ForecastCLI

        ForecastCLI()
