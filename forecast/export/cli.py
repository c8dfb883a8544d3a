"""``python -m forecast export``: a checkpoint as one file that forecasts without this package.

python -m forecast export --ckpt_path best --output model.pt2
python -m forecast export --ckpt_path runs/.../best.ckpt --output model.onnx [--format onnx]
"""

from __future__ import annotations

import argparse

from forecast.parsers import CommandParser, add_checkpoint_options


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m forecast export",
        description="Export a checkpoint's whole path from prices to dollars (per-window normalisation, the network, "
        "de-normalisation) as one program with a dynamic batch size; its input and output spec is in the file's "
        "metadata (docs/serving.md).",
    )
    add_checkpoint_options(parser)
    parser.add_argument("--output", required=True, help="the file to write (.pt2 or .onnx)")
    parser.add_argument(
        "--format",
        choices=("pt2", "onnx"),
        help="pt2: torch.export, loaded by torch.export.load(FILE).module(); onnx: for onnxruntime "
        "(pip install 'forecast[export]'). Default: onnx for a .onnx name, else pt2",
    )
    return parser


def main(argv: list[str]) -> None:
    from forecast.export.writer import export_checkpoint

    args = build_parser().parse_args(argv)
    spec = export_checkpoint(args.ckpt_path, args.output, args.format, args.root)
    shape = ", ".join(map(str, spec["input"]["shape"]))
    out = ", ".join(map(str, spec["output"]["shape"]))
    print(f"wrote {args.output}: {spec['input']['name']} ({shape}) float32 dollars -> forecasts ({out}) dollars")
