"""The parser of a command of this tool that is not LightningCLI's (``backtest``, ``tune``, ``export``, ``serve``)."""

from __future__ import annotations

import argparse
from typing import Any


class CommandParser(argparse.ArgumentParser):
    """A command's own options. A bad option raises ``argparse.ArgumentError``, which :mod:`forecast.main` prints as
    one line with exit 2; an abbreviated option is refused (``--out`` never means ``--output``), as fit's are."""

    def __init__(self, prog: str, description: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, description=description, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """``--ckpt_path`` and ``--root``: the checkpoint a command reads, as ``forecast.load`` finds it."""
    parser.add_argument("--ckpt_path", required=True, help="best, last (of the newest run under --root) or a file")
    parser.add_argument("--root", default=".", help="where --ckpt_path best|last looks for runs (default: .)")
