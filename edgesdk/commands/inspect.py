"""edgesdk inspect MODEL_OR_ARTIFACT"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser(
        "inspect",
        help="show a model's or artifact's operators, sizes and quantized tensors",
        description="Operators, inputs/outputs, weight sizes by data type, and which tensors are quantized to what.",
    )
    p.add_argument("path", help="an .onnx file or an artifact directory")
    add_json_flag(p)
    return p


def run(args) -> int:
    from ..inspection import format_report, inspect

    report = inspect(args.path)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0
