"""Where the seconds of one DJIA fit go (cProfile): ``python scripts/profile_fit.py DATA_FILE``.

The fit is ``configs/djia.yaml`` with one torch thread, the test after fit included, its run folder in a
temporary directory. cProfile's own overhead inflates Python-heavy rows: read the table as shares.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable

started = time.perf_counter()
import forecast.main  # noqa: E402  (timed: the dispatcher imports neither torch nor Lightning)

IMPORT_SECONDS = time.perf_counter() - started


def main() -> None:
    data = sys.argv[1]
    sys.argv = ["forecast", "fit", "--config", "configs/djia.yaml", "--data.source", "csv", "--data.path", data,
                "--torch_threads", "1", "--trainer.enable_progress_bar", "false",
                "--trainer.default_root_dir", tempfile.mkdtemp()]  # fmt: skip
    profile = cProfile.Profile()
    profile.enable()
    with contextlib.suppress(SystemExit):
        forecast.main.main()
    profile.disable()
    total = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(match: Callable[[tuple[str, int, str]], bool]) -> float:
        return max((row[3] for key, row in stats.items() if match(key)), default=0.0)

    def named(file: str, function: str) -> float:
        return cumulative(lambda key: key[2] == function and key[0].endswith(file))

    fit = named("trainer/trainer.py", "fit")
    rows = {
        "import forecast.main (the dispatcher)": IMPORT_SECONDS,
        "torch, Lightning, parsing, building model and data (before Trainer.fit)": named("forecast/main.py", "main")
        - fit
        - named("forecast/cli.py", "after_fit"),
        "read, check and index the data": named("forecast/cli.py", "_check_data"),
        "training steps: forward": named("forecast/model/forecaster.py", "training_step"),
        "training steps: backward": named("optimization/automatic.py", "backward_fn"),
        "training steps: optimizer (AdamW)": named("optimization/automatic.py", "_optimizer_step")
        - named("optimization/automatic.py", "_training_step")
        - named("optimization/automatic.py", "backward_fn"),
        "batches: gather and normalise": named("forecast/data/windows.py", "__getitems__"),
        "validation loops (every epoch)": sum(
            row[3] for key, row in stats.items() if key[2] == "run" and key[0].endswith("evaluation_loop.py")
        )
        - named("forecast/cli.py", "after_fit"),
        "forecast figures (TensorBoard, every epoch)": named("callbacks/figures.py", "on_validation_epoch_end"),
        "test after fit, report and figures": named("forecast/cli.py", "after_fit"),
    }
    print(f"total wall, cProfile on: {total:.1f} s")
    print("| part | seconds |\n|---|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
