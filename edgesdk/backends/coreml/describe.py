"""What ``inspect`` shows of an .mlpackage: inputs and outputs, deployment target, the MIL ops, and each
weight's storage (dtype, compression: per channel or per block, its size)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .deployment import spec_target
from .evaluate import load_program

COMPRESSED = {"constexpr_blockwise_shift_scale": "per block", "constexpr_affine_dequantize": "per channel"}


def describe(package: Path) -> dict[str, Any]:
    program, spec = load_program(package)  # first: it imports coremltools quietly
    from coremltools.converters.mil.mil import types

    # a causal LM's package: prefill (the default function) and decode, the same ops on other shapes
    default = spec.description.defaultFunctionName or "main"
    function = program.functions[default]
    ops = Counter(op.op_type for op in function.operations)
    weights = []
    for op in function.operations:
        if op.op_type in COMPRESSED:
            data = op.data if op.op_type == "constexpr_blockwise_shift_scale" else op.quantized_data
            scale = op.scale.val
            block = [int(d // s) for d, s in zip(data.shape, scale.shape)] if op.op_type == "constexpr_blockwise_shift_scale" else None
            weights.append({"name": op.name, "dtype": types.builtin_to_string(data.dtype), "shape": list(data.shape),
                            "compression": COMPRESSED[op.op_type] if op.op_type != "constexpr_blockwise_shift_scale"
                            or scale.size > 1 and max(block) > 1 else "per channel",
                            "block": block, "scale_dtype": str(np.asarray(scale).dtype)})
    float_weights = [op for op in function.operations if op.op_type == "const" and op.outputs[0].val is not None
                     and np.asarray(op.outputs[0].val).size >= 1024]
    metadata = dict(spec.description.metadata.userDefined)
    return {
        "deployment_target": spec_target(spec.specificationVersion),
        "specification_version": spec.specificationVersion,
        "functions": {f.name: {"inputs": [_feature(i) for i in f.input], "outputs": [_feature(o) for o in f.output]}
                      for f in spec.description.functions},
        "default_function": default,
        "inputs": [_feature(f) for f in spec.description.input or _default(spec).input],
        "outputs": [_feature(f) for f in spec.description.output or _default(spec).output],
        "op_counts": dict(ops),
        "quantized_weights": weights,
        "float_weights": [{"name": op.name, "dtype": str(np.asarray(op.outputs[0].val).dtype),
                           "shape": list(np.asarray(op.outputs[0].val).shape)} for op in float_weights],
        "int8_activations": ops.get("quantize", 0),
        "recipe": metadata.get("edgesdk.recipe"),
    }


def _default(spec):
    return next(f for f in spec.description.functions if f.name == spec.description.defaultFunctionName)


def _feature(feature) -> dict[str, Any]:
    from coremltools.proto import FeatureTypes_pb2

    array = feature.type.multiArrayType
    dtype = {FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32", FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
             FeatureTypes_pb2.ArrayFeatureType.INT32: "int32", FeatureTypes_pb2.ArrayFeatureType.DOUBLE: "float64"}
    return {"name": feature.name, "dtype": dtype.get(array.dataType, str(array.dataType)), "shape": [int(d) for d in array.shape]}


def describe_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"  deployment target: {report['deployment_target']} (Core ML specification {report['specification_version']})"
             + (f"; recipe {report['recipe']}" if report.get("recipe") else "")]
    if report.get("functions"):
        shapes = {name: next((i["shape"] for i in f["inputs"] if i["name"] == "input_ids"), None) for name, f in report["functions"].items()}
        lines.append("  functions: " + ", ".join(f"{name}" + (f" (input_ids {shape})" if shape else "") for name, shape in shapes.items())
                     + f"; the ops and weights below are {report['default_function']}'s (the functions share the weights)")
    lines += [f"  {kind[:-1]:6s} {s['name']}: {s['dtype']}{s['shape']}" for kind in ("inputs", "outputs") for s in report[kind]]
    lines.append("  MIL ops: " + ", ".join(f"{op}×{n}" for op, n in sorted(report["op_counts"].items(), key=lambda kv: -kv[1])))
    if report["int8_activations"]:
        lines.append(f"  int8 activations: {report['int8_activations']} quantize ops (the graph's own scales and zero points)")
    weights = report["quantized_weights"]
    by_kind = Counter((w["dtype"], w["compression"], tuple(w["block"] or ())) for w in weights)
    summary = ", ".join(f"{n}× {dtype} {kind}" + (f" (block {'×'.join(map(str, block))})" if kind == "per block" else "")
                        for (dtype, kind, block), n in by_kind.items())
    lines.append(f"  quantized weights: {len(weights)}" + (f" — {summary}" if weights else ""))
    for w in weights:
        lines.append(f"    {w['name']}: {w['dtype']}{w['shape']} {w['compression']}"
                     + (f", block {'×'.join(map(str, w['block']))}" if w["compression"] == "per block" else "")
                     + f", scales {w['scale_dtype']}")
    if report["float_weights"]:
        lines.append(f"  float weights: {len(report['float_weights'])} tensors of ≥ 1024 values ("
                     + ", ".join(sorted({w['dtype'] for w in report['float_weights']})) + ")")
    return lines
