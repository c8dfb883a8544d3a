"""What every worker process does first, whichever executor started it: name settings as the driver's caller does
(flags or keywords in messages), and show log lines as the driver's command would."""

from __future__ import annotations

from forecast import signals, terminal
from forecast.errors import Interface, set_interface


def start_worker(interface: Interface, debug: bool) -> None:
    """Set a worker process up like the driver: the same way of naming settings, the same log lines; SIGTERM stops
    its task as it stops a command (a fit saves the step it reached), and Ctrl-C is the driver's to act on."""
    set_interface(interface)
    terminal.configure(debug)
    signals.install(interrupt=False)
