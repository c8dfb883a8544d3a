"""The project's chunked CSV reader against pyarrow's streaming one, side by side, on one file.

    python scripts/bench_reader.py PATH.csv [--repeats 2]

Each reader runs in its own fresh process (so each peak RSS is its own; the growth over the RSS after the imports
is what reading costs, ours imports torch), in turn, ``--repeats`` times:

- ``ours``: ``forecast.data`` reading the file a million rows at a time, checking every chunk (dates, numbers,
  tickers; messages with file and line) and keeping compact arrays, sorted by (ticker, date), duplicates refused;
- ``pyarrow``: ``pyarrow.csv.open_csv`` streaming record batches (tickers and dates as text, dates parsed by
  ``pyarrow.compute.strptime``), the same columns kept, then sorted by (ticker, date) and checked for repeats.

pyarrow is the ``parquet`` extra (``pip install -e '.[parquet]'``). Make a large file with
``python scripts/bench_data.py --tickers 5000 --days 5000 --csv PATH``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _ours(path: str) -> int:
    from forecast.data.layouts import read_chunks
    from forecast.data.sources import read_date_column, read_file_chunks
    from forecast.data.validate import clean_chunks

    frame = clean_chunks(read_chunks(path, read_file_chunks, "Close", None, read_date_column), ["Close"])
    return len(frame)


def _pyarrow(path: str) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    options = csv.ConvertOptions(column_types={"Name": pa.string(), "Date": pa.string()}, include_columns=None)
    reader = csv.open_csv(path, convert_options=options, read_options=csv.ReadOptions(block_size=1 << 26))
    names, dates, closes = [], [], []
    for batch in reader:
        names.append(batch.column("Name").dictionary_encode())
        dates.append(pc.strptime(batch.column("Date"), format="%Y-%m-%d", unit="s"))
        closes.append(batch.column("Close").cast(pa.float64()))
    table = pa.table(
        {
            "Name": pa.chunked_array(names).cast(pa.string()),
            "Date": pa.chunked_array(dates),
            "Close": pa.chunked_array(closes),
        }
    )
    table = table.take(pc.sort_indices(table, [("Name", "ascending"), ("Date", "ascending")]))
    name, date = table.column("Name").to_numpy(), table.column("Date").to_numpy()
    if ((name[1:] == name[:-1]) & (date[1:] == date[:-1])).any():
        raise ValueError("duplicate (Name, Date)")
    return int(np.asarray(table.num_rows))


def _run_one(reader: str, path: str) -> None:
    # imports first (forecast.data brings torch): the time is the reading alone
    if reader == "ours":
        import forecast.data.validate  # noqa: F401
    else:
        import pyarrow.csv  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    rows = {"ours": _ours, "pyarrow": _pyarrow}[reader](path)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"reader": reader, "rows": rows, "seconds": seconds, "peak_rss_mb": peak, "growth_mb": peak - before}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", choices=("ours", "pyarrow"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _run_one(args.one, args.path)
        return
    results = []
    for _ in range(args.repeats):
        for reader in ("ours", "pyarrow"):
            done = subprocess.run(
                [sys.executable, __file__, args.path, "--one", reader], capture_output=True, text=True, check=True
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| reader | rows | seconds | peak RSS MB | peak RSS over the imports MB |\n|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['reader']} | {r['rows']:,} | {r['seconds']:.2f} | {r['peak_rss_mb']:,.0f} | {r['growth_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
