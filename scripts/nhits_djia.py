"""The yardstick job for wall time: NHITS (neuralforecast) on the DJIA protocol's windows, CPU, one thread, trained
and used as its users run it.

    NF_PYTHON scripts/nhits_djia.py DATA_FILE

Runs in a throwaway environment that has ``neuralforecast`` (not a dependency of this project; see
``scripts/compare_nhits.sh``, which makes it and times both jobs side by side). The job: read the file; ``fit``
NHITS (input 30 days, horizon 10, ``scaler_type="robust"``, up to 1,000 steps, validation on 2016's days every 50
steps, ``early_stop_patience_steps=6``) on every ticker's days through 2016; then forecast every test window of
2017 (first and last target day in 2017) with one ``predict`` call, each window's last 30 days a series of its own
(NHITS scales and reads the input window alone, so these are the forecasts a call per origin would give). Prints
the steps trained and the number of forecasts.
"""

from __future__ import annotations

import sys
import time

import pandas as pd
import torch

INPUT, HORIZON = 30, 10


def main() -> None:
    torch.set_num_threads(1)
    import pytorch_lightning as pl
    from neuralforecast import NeuralForecast
    from neuralforecast.models import NHITS

    trained = {}

    class Steps(pl.Callback):
        def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            trained["steps"] = trainer.global_step

    start = time.perf_counter()

    raw = pd.read_csv(sys.argv[1], usecols=["Date", "Close", "Name"]).dropna()
    raw = raw.sort_values(["Name", "Date"]).reset_index(drop=True)
    raw["ds"] = raw.groupby("Name").cumcount()  # trading days of each ticker, as the protocol counts steps
    frame = raw.rename(columns={"Name": "unique_id", "Close": "y"})
    history = frame[frame["Date"] <= "2016-12-31"]
    val_size = int(history[history["Date"] >= "2016-01-01"].groupby("unique_id").size().min())
    model = NHITS(
        h=HORIZON, input_size=INPUT, scaler_type="robust", max_steps=1000, val_check_steps=50,
        early_stop_patience_steps=6, enable_progress_bar=False, enable_model_summary=False,
        logger=False, accelerator="cpu", callbacks=[Steps()],
    )  # fmt: skip
    forecaster = NeuralForecast(models=[model], freq=1)
    forecaster.fit(df=history[["unique_id", "ds", "y"]], val_size=val_size)
    fitted = time.perf_counter()

    # the test windows: origin t with days t+1 .. t+H all in 2017
    windows = []
    for name, days in frame.groupby("unique_id", sort=True):
        dates, values = days["Date"].to_numpy(), days["y"].to_numpy()
        for t in range(INPUT - 1, len(days) - HORIZON):
            if dates[t + 1] >= "2017-01-01" and dates[t + HORIZON] <= "2017-12-31":
                windows.append(pd.DataFrame({"unique_id": f"{name}@{dates[t]}", "ds": range(INPUT),
                                             "y": values[t - INPUT + 1 : t + 1]}))  # fmt: skip
    forecasts = forecaster.predict(df=pd.concat(windows, ignore_index=True))
    done = time.perf_counter()
    print(
        f"NHITS: {trained.get('steps')} steps, read + fit {fitted - start:.1f} s, predict {done - fitted:.1f} s; "
        f"forecasts: {len(forecasts):,}"
    )


if __name__ == "__main__":
    main()
