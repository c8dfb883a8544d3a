"""``python -m forecast COMMAND``: the commands, their help (no torch imported), and how a command ends: exit 0
when done; 2 and one line on stderr for a problem the user can fix (:class:`forecast.errors.UserError`, a bad option,
a file); 130 after Ctrl-C, with what to do next; 1 with the traceback and one line for an internal failure."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from forecast.errors import TrainingDivergedError, UserError, first_line, speaking
from forecast.signals import Interrupted, Stopped, Terminated, end_within, install

EXIT_INTERNAL_ERROR, EXIT_USER_ERROR = 1, 2
DEBUG_ENV = "FORECAST_DEBUG"
COMMANDS = {
    "fit": "train a model (a new run, --ckpt_path to resume one, --init_from for a warm start)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split against the baselines",
    "predict": "forecast with a checkpoint into a CSV file (the test windows, or the latest days)",
    "backtest": "walk-forward test years: fits, scores against the best simple baseline, DM tests, signal",
    "tune": "hyperparameter search with Optuna, each trial scored on validation years only",
    "export": "a checkpoint as one program, prices to dollars, for torch.export (pt2) or ONNX",
    "serve": "an HTTP forecast service of a checkpoint (LitServe): POST /predict with each ticker's closes",
}
HELP = f"""usage: python -m forecast COMMAND [options]   (python -m forecast COMMAND --help: its options)

Stock price forecasts from a 1D-CNN with an implicit ridge-regression layer, on PyTorch Lightning.

commands:
{chr(10).join(f"  {name:<10} {text}" for name, text in COMMANDS.items())}

A config file before the command (python -m forecast --config top.yaml fit) holds sections per command.
--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices."""
AFTER_CTRL_C = {  # what to do after a signal, per command (fit says it itself, with its checkpoint)
    "serve": "the service stopped, its worker processes with it",
    "backtest": "the same command resumes the backtest (finished folds are kept)",
    "tune": "the same command resumes the study (the interrupted trials run again first, their finished folds kept)",
}


def main(args: list[str] | None = None) -> None:
    """Entry point of ``python -m forecast``: run the command, then exit with the code the module's docstring
    gives (with ``--debug`` an exception propagates with its traceback instead)."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP, file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else EXIT_USER_ERROR)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # DDP launches this command again in child processes
    name = next((a for a in argv if a in COMMANDS), "")
    from forecast import terminal  # Lightning, imported once a command runs

    terminal.configure(debug, subcommand=name)
    install()  # Ctrl-C and SIGTERM unwind the command in every phase, and end it with 130 or 143
    with speaking("command line"):
        code = _ended(lambda: _dispatch(name, argv), name, debug)
    sys.exit(code)


def _dispatch(name: str, argv: list[str]) -> None:
    """Each command's module, imported when it runs (fit, validate, test, predict: :func:`forecast.run.command`)."""
    if name == "backtest":
        from forecast.backtest.cli import main as backtest

        return backtest(argv[argv.index(name) + 1 :])
    if name in ("tune", "export", "serve"):
        from importlib import import_module

        return import_module(f"forecast.{name}.cli").main(argv[argv.index(name) + 1 :])
    from forecast.run import command

    command(argv)
    return None


def _ended(command: Callable[[], None], name: str, debug: bool) -> int:
    """Run ``command``; the exit code, after printing what a user needs to read (``debug``: raise instead)."""
    try:
        command()
    except (KeyboardInterrupt, Stopped, Exception) as exc:
        if debug:
            raise
        if isinstance(exc, (KeyboardInterrupt, Stopped)):
            code = exc.exit_code if isinstance(exc, Stopped) else Interrupted().exit_code
            advice = getattr(exc, "advice", None) or AFTER_CTRL_C.get(name, "nothing was left half-written")
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            print(f"error: {what}; {advice}", file=sys.stderr, flush=True)
            end_within(30.0, code)  # a shutdown that hangs still ends
            return code
        if isinstance(exc, argparse.ArgumentError):  # the parser's message spans lines: keep it, on one
            print(f"error: {' '.join(str(exc).split())} (see: python -m forecast {name} --help)", file=sys.stderr)
            return EXIT_USER_ERROR
        if isinstance(exc, (UserError, OSError)):
            print(f"error: {first_line(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        # a diverged training says what to try in its own message; anything else is a bug to report
        advice = "" if isinstance(exc, TrainingDivergedError) else "; please report it with the traceback above"
        problem = f"{type(exc).__name__}: {first_line(exc)}{advice}"
        print(f"error: internal failure in {name or 'forecast'}, not a problem with your input: {problem}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL_ERROR
    return 0
