"""The yardstick job for wall time: NHITS (neuralforecast) on the DJIA protocol's windows, CPU, one thread.

    NF_PYTHON scripts/nhits_djia.py DATA_FILE

Runs in a throwaway environment that has ``neuralforecast`` (not a dependency of this project; see
``scripts/compare_nhits.sh``, which makes it and times both jobs side by side). The job: read the file, train
NHITS (input 30 days, horizon 10, early stopping on the last 252 days before 2017) on every ticker's days
through 2016, then forecast every 2017 origin (step 1, no refit), as ``forecast fit --config configs/djia.yaml``
trains, validates and scores its test windows. Prints the number of forecasts.
"""

from __future__ import annotations

import sys

import pandas as pd
import torch


def main() -> None:
    torch.set_num_threads(1)
    from neuralforecast import NeuralForecast
    from neuralforecast.models import NHITS

    raw = pd.read_csv(sys.argv[1], usecols=["Date", "Close", "Name"]).dropna()
    raw = raw.sort_values(["Name", "Date"])
    raw["ds"] = raw.groupby("Name").cumcount()  # trading days of each ticker, as the protocol counts steps
    frame = raw.rename(columns={"Name": "unique_id", "Close": "y"})[["unique_id", "ds", "y", "Date"]]
    in_2017 = int((frame.groupby("unique_id")["Date"].apply(lambda d: (d >= "2017-01-01").sum())).min())
    model = NHITS(
        h=10, input_size=30, max_steps=1000, val_check_steps=50, early_stop_patience_steps=5, random_seed=0,
        enable_progress_bar=False, enable_model_summary=False, logger=False, accelerator="cpu",
    )  # fmt: skip
    forecaster = NeuralForecast(models=[model], freq=1)
    result = forecaster.cross_validation(
        df=frame[["unique_id", "ds", "y"]], val_size=252, test_size=in_2017, n_windows=None, step_size=1, refit=False
    )
    print(f"NHITS forecasts: {len(result):,}")


if __name__ == "__main__":
    main()
