"""The parser of a command of this tool that is not LightningCLI's (``backtest``, ``tune``, ``export``, ``serve``)."""

from __future__ import annotations

import argparse


class CommandParser(argparse.ArgumentParser):
    """A bad option raises ``argparse.ArgumentError``, which :mod:`forecast.main` prints as one line with exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)
