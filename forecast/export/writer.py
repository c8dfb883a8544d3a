"""``forecast export``: a checkpoint's whole path from prices to dollars as one file that runs without this
package — ``pt2`` (``torch.export``; ``torch.export.load(FILE).module()``) or ``onnx`` (``torch.onnx.export`` with
dynamo; onnxruntime) — with a dynamic batch size and the input spec in the file's metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch

from forecast.atomic import write_atomic
from forecast.errors import UserError
from forecast.export.program import NotExportableError, PriceForecaster, input_spec

Format = Literal["pt2", "onnx"]
METADATA_KEY = "forecast.json"
"""The metadata's name: a ``pt2`` file's extra file, an ONNX model's ``metadata_props`` key."""
TOLERANCE = 1e-5
"""Largest relative difference allowed between the exported program and the eager one on the example windows."""


def example_prices(spec: dict[str, Any], batch: int = 3) -> torch.Tensor:
    """Plausible inputs of the spec's shape: random-walk prices around $100 (volumes around a million shares)."""
    generator = torch.Generator().manual_seed(0)
    channels, length = spec["input"]["channels"], spec["base_len"]
    walk = 100.0 * torch.exp(0.01 * torch.randn(batch, len(channels), length, generator=generator).cumsum(-1))
    for k, channel in enumerate(channels):
        if channel == "Volume":
            walk[:, k] *= 1e4
    return walk[:, 0] if spec["input"]["name"] == "closes" else walk


def export_checkpoint(
    ckpt_path: str | Path, output: str | Path, format: Format | None = None, root: str | Path = "."
) -> dict[str, Any]:
    """Write ``output``; return the spec written into its metadata.

    Args:
        ckpt_path: ``best``, ``last`` (of the newest run under ``root``) or a ``.ckpt`` file.
        output: the file to write (its folder is made; the file appears whole or not at all).
        format: ``pt2`` or ``onnx``; default: ``onnx`` for a ``.onnx`` name, else ``pt2``.

    Raises:
        NotExportableError: a model trained with ``pool: batch``.
        UserError: ``onnx`` without the ``export`` extra installed.
        CheckpointError: no such checkpoint, or not this tool's.
    """
    from forecast.api import load

    output = Path(output)
    chosen: Format = format or ("onnx" if output.suffix.lower() == ".onnx" else "pt2")
    if chosen not in ("pt2", "onnx"):
        raise UserError(f"unknown export format {chosen!r}; choose pt2 or onnx")
    if chosen == "onnx":
        _require_onnx()
    loaded = load(ckpt_path, root)
    data = loaded.settings["data"]
    spec = input_spec(loaded.model, data) | {"checkpoint": str(loaded.path), "format_of_file": chosen}
    program = PriceForecaster.of(loaded, unrolled=chosen == "onnx")
    example = example_prices(spec)
    with torch.no_grad():
        expected = program(example)
    batch = {"prices": {0: torch.export.Dim.DYNAMIC}}
    output.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "pt2":
        exported = torch.export.export(program, (example,), dynamic_shapes=batch)
        with torch.no_grad():
            _check(exported.module()(example), expected)
        write_atomic(output, lambda tmp: _save_pt2(exported, tmp, spec))
    else:
        # the exporter's notices (optional torchvision operators it skips) are not the user's concern
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        onnx_program = torch.onnx.export(
            program, (example,), dynamic_shapes=batch, dynamo=True, input_names=[spec["input"]["name"]],
            output_names=["forecasts"], verbose=False,
        )  # fmt: skip
        write_atomic(output, lambda tmp: _save_onnx(onnx_program, tmp, spec, example, expected))
    return spec


def _save_pt2(exported: torch.export.ExportedProgram, path: Path, spec: dict[str, Any]) -> None:
    with open(path, "wb") as file:  # a file object: the temporary name does not end in .pt2
        torch.export.save(exported, file, extra_files={METADATA_KEY: json.dumps(spec)})


def _save_onnx(onnx_program: Any, path: Path, spec: dict[str, Any], example: torch.Tensor, expected: Any) -> None:
    """Write the ONNX file at ``path`` (a temporary name) and check what onnxruntime computes from it there: a
    file that differs from the model never takes the output's name."""
    import onnx

    model = onnx_program.model_proto
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(spec)})
    onnx.save(model, str(path))
    _check(torch.from_numpy(run_onnx(path, example.numpy())), expected)


def run_onnx(path: str | Path, prices: Any) -> Any:
    """The forecasts of an exported ``.onnx`` file for ``prices`` (a float32 array), by onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: prices})[0]


def _check(got: torch.Tensor, expected: torch.Tensor) -> None:
    """The exported program must give the eager program's numbers: a model change that export captures wrongly
    fails here, before anything is written."""
    worst = float(((got - expected).abs() / expected.abs().clamp_min(1e-12)).max())
    if not worst <= TOLERANCE:
        raise RuntimeError(f"the exported program differs from the model by {worst:.2e} (relative); not written")


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError(f"--format onnx needs {exc.name}: pip install 'forecast[export]'") from exc


__all__ = ["NotExportableError", "export_checkpoint", "run_onnx"]
