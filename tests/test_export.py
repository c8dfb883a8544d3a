"""``forecast export``: the pt2 and the ONNX file of a point and of a quantile model (with a Volume channel) give
``predict``'s forecasts of the latest windows within 1e-5 (relative, float32), for any batch size; the input spec is
in each file's metadata; what cannot be exported is one line, with nothing written."""

import json

import numpy as np
import pytest
import torch
from helpers import require, run_dir, run_main

import forecast

BRIEF = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
         "--trainer.enable_progress_bar", "false", "--test_after_fit", "false", "--data.base_len", "20",
         "--data.horizon", "5", "--model.lookback", "4", "--model.encoder_channels", "[3, 6]"]  # fmt: skip
MODELS = {
    "point": [],
    "quantile-volume": [
        *("--data.channels", "[Close, Volume]", "--data.normalisation", "zscore"),
        *("--model.quantiles", "[0.1, 0.5, 0.9]", "--data.calibration_fraction", "0.5"),  # conformal shifts too
    ],
    "anchored": ["--model.anchor", "mean_return"],  # the mean-return path's offset is part of the program
}


def _fit(root, panel, options):
    panel.to_csv(root / "prices.csv", index=False)
    result = run_main(["fit", "--data.source", "csv", "--data.path", "prices.csv", *BRIEF, *options], root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir(root) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module", params=list(MODELS))
def checkpoint(request, tmp_path_factory, small_panel):
    return _fit(tmp_path_factory.mktemp(request.param), small_panel, MODELS[request.param])


def _latest_inputs(panel, spec):
    """Each ticker's last base_len rows as the spec's input, in the predict frame's ticker order."""
    channels, length = spec["input"]["channels"], spec["base_len"]
    names = sorted(panel["Name"].unique())
    rows = [panel[panel["Name"] == name].sort_values("Date").tail(length) for name in names]
    prices = np.stack([r[channels].to_numpy(dtype=np.float32).T for r in rows])  # (B, C, L)
    return names, prices[:, 0] if spec["input"]["name"] == "closes" else prices


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_exported_file_forecasts_as_predict_does(fmt, checkpoint, small_panel, tmp_path):
    if fmt == "onnx":
        require("onnxruntime", "export")
    output = tmp_path / f"model.{fmt}"
    result = run_main(["export", "--ckpt_path", str(checkpoint), "--output", str(output)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {output}" in result.stdout

    model = forecast.load(checkpoint)
    expected = model.predict(small_panel, at="latest")
    if fmt == "pt2":  # torch alone reads it back: the program and its metadata
        extra = {"forecast.json": ""}
        program = torch.export.load(str(output), extra_files=extra).module()
        spec = json.loads(extra["forecast.json"])
    else:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
        spec = json.loads(props["forecast.json"])
    names, prices = _latest_inputs(small_panel, spec)
    assert spec["horizon"] == model.horizon and spec["output"]["quantile_levels"] == model.quantiles
    for batch in (1, len(names)):  # the batch size is dynamic
        if fmt == "pt2":
            with torch.no_grad():
                got = program(torch.from_numpy(prices[:batch])).numpy()
        else:
            got = forecast.export.run_onnx(output, prices[:batch])
        assert got.shape == (batch, *[int(d) for d in spec["output"]["shape"][1:]])
        for k, name in enumerate(names[:batch]):
            rows = expected[expected["Name"] == name].sort_values("step")
            columns = ["forecast"] if model.quantiles is None else [f"q{level:g}" for level in model.quantiles]
            want = rows[columns].to_numpy()  # (H, 1) or (H, Q)
            np.testing.assert_allclose(got[k].reshape(want.shape), want, rtol=1e-5)


REFUSED = {
    "pool-batch": (
        ["--model.pool", "batch"],
        "error: a model trained with pool: batch cannot be exported: its regression pools the windows of a batch, so "
        "a window's forecast depends on its batch mates; train with pool: sample",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_cannot_be_one_program_is_refused_in_one_line(case, tmp_path, small_panel):
    options, message = REFUSED[case]
    _fit(tmp_path, small_panel, options)
    output = tmp_path / "out" / "model.pt2"
    result = run_main(["export", "--ckpt_path", "best", "--output", str(output)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
    assert not output.exists()


def test_a_missing_checkpoint_is_one_line(tmp_path):
    result = run_main(["export", "--ckpt_path", "nowhere.ckpt", "--output", "m.pt2"], tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "nowhere.ckpt" in result.stderr and not (tmp_path / "m.pt2").exists()


def test_the_serving_page_example_runs_with_torch_and_pandas_alone(small_panel, tmp_path):
    """docs/serving.md's pt2 example, run as written in a fresh interpreter: neither this package nor Lightning is
    imported, and its forecasts are predict's."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    checkpoint = _fit(tmp_path, small_panel, MODELS["point"])
    page = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
    block = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)[0]
    assert len(block.strip().splitlines()) <= 20
    assert run_main(["export", "--ckpt_path", str(checkpoint), "--output", "model.pt2"], tmp_path).returncode == 0
    loaded = "sorted(m for m in sys.modules if m.split('.')[0] in ('forecast', 'lightning'))"
    script = block + f"\nimport sys\nprint({loaded})"
    script += "\nforecasts.to_csv('out.csv')\n"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    import pandas as pd

    got = pd.read_csv(tmp_path / "out.csv", index_col=0)
    expected = forecast.load(checkpoint).predict(small_panel, at="latest")
    want = expected.pivot(index="Name", columns="step", values="forecast")
    np.testing.assert_allclose(got.to_numpy(), want.loc[got.index].to_numpy(), rtol=1e-5)


def test_a_market_model_without_normalisation_is_refused(tmp_path, small_panel):
    _fit(tmp_path, small_panel, ["--data.channels", "[Close, Market]", "--data.normalisation", "none"])
    result = run_main(["export", "--ckpt_path", "best", "--output", "m.pt2"], tmp_path)
    assert result.returncode == 2 and "reads the index's level" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.pt2").exists()


def test_an_onnx_file_that_differs_from_the_model_is_never_written(tmp_path, small_panel, monkeypatch):
    require("onnxruntime", "export")
    from forecast.export import writer

    checkpoint = _fit(tmp_path, small_panel, MODELS["point"])
    good = tmp_path / "model.onnx"
    good.write_text("the user's earlier file")

    def differs(got, expected):
        raise RuntimeError("the exported program differs from the model by 1.00e-01 (relative); not written")

    monkeypatch.setattr(writer, "_check", differs)
    with pytest.raises(RuntimeError, match="not written"):
        writer.export_checkpoint(checkpoint, good)
    assert good.read_text() == "the user's earlier file"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.onnx")] == []
