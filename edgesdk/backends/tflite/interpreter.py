"""Run and describe .tflite files with LiteRT (ai_edge_litert), the TFLite runtime edge devices use.

TF's own tf.lite.Interpreter is deprecated and gives different int8 numbers: it is never used here."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ArtifactError, MissingDependencyError

# Ops that only move, select or reshape data: on int8 data they are int8 by construction, and on float
# data the compute ops around them already show the float.
PLUMBING = {
    "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "GATHER", "GATHER_ND", "SLICE", "STRIDED_SLICE",
    "CONCATENATION", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "BROADCAST_TO", "TILE", "SHAPE", "PAD", "PADV2",
    "SELECT", "SELECT_V2", "REVERSE_V2",
}
_FLOAT_TYPES = {"float32", "float16", "float64", "bfloat16"}


def _interpreter(model_path: str | Path, threads: int | None = None, delegates: bool = True):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise MissingDependencyError("ai-edge-litert", "tflite", "Running TFLite models") from None
    path = Path(model_path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such TFLite model file")
    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with a multi-line message
        text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ArtifactError(f"{path}: not a readable TFLite model ({text})") from None


def _quantization(details: dict[str, Any]) -> dict[str, Any] | None:
    params = details.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    if scales.size == 0:
        return None
    zero_points = np.asarray(params.get("zero_points", []))
    if scales.size == 1:
        return {"scale": float(scales[0]), "zero_point": int(zero_points[0])}
    return {"scales": scales.tolist(), "zero_points": zero_points.tolist(), "axis": int(params.get("quantized_dimension", 0))}


def host_runner(model_path: str | Path, io: dict[str, dict[str, str]], threads: int | None = None) -> Callable:
    """A function feed {ONNX input name: array} -> {ONNX output name: float32 array}.

    Runs the model's signature with LiteRT (XNNPACK is LiteRT's default delegate) on ``threads`` threads.
    Integer inputs (token ids) are cast to the model's integer type; float inputs of an int8-input model
    are quantized with that input's own scale and zero point; int8 outputs are dequantized."""
    interpreter = _interpreter(model_path, threads)
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise ArtifactError(f"{model_path}: the TFLite model has no signature to run")
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    for kind, names, found in (("input", io["inputs"], inputs), ("output", io["outputs"], outputs)):
        missing = sorted(set(names.values()) - set(found))
        if missing:
            raise ArtifactError(f"{model_path}: the model has no signature {kind} {', '.join(missing)}")

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {}
        for onnx_name, sig_name in io["inputs"].items():
            x, details = np.asarray(feed[onnx_name]), inputs[sig_name]
            dtype = np.dtype(details["dtype"])
            q = _quantization(details)
            if q and "scale" in q and np.issubdtype(x.dtype, np.floating) and not np.issubdtype(dtype, np.floating):
                info = np.iinfo(dtype)
                x = np.clip(np.rint(x / q["scale"]) + q["zero_point"], info.min, info.max)
            args[sig_name] = x.astype(dtype)
        result = runner(**args)
        out = {}
        for onnx_name, sig_name in io["outputs"].items():
            y, q = result[sig_name], _quantization(outputs[sig_name])
            if q and "scale" in q and not np.issubdtype(y.dtype, np.floating):
                y = (y.astype(np.float32) - q["zero_point"]) * q["scale"]
            out[onnx_name] = np.asarray(y, np.float32) if np.issubdtype(np.asarray(y).dtype, np.floating) else y
        return out

    return run


def describe(model_path: str | Path) -> dict[str, Any]:
    """Every op of the model with its tensor types, counts per op, the signature inputs/outputs, and
    whether the model is fully int8.

    ``fully_int8`` is true when no *compute* op reads or writes a float tensor. Every op is a compute op
    except data movement (PLUMBING: RESHAPE, TRANSPOSE, GATHER, CONCATENATION, SLICE, SELECT_V2, ...:
    on int8 data they are int8 anyway) and ops whose tensors are all integer or boolean (index and
    shape arithmetic, mask logic). At the model's float boundary (int8_io off) a QUANTIZE that reads a
    model input and a DEQUANTIZE that writes a model output are allowed; anywhere else they are float
    work and count. Integer tensors (int32 bias, int64 token ids) never count as float.
    ``not_int8`` lists the compute ops that touch a float tensor, as "index:OP"."""
    interpreter = _interpreter(model_path, delegates=False)
    try:
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        op_details = interpreter._get_ops_details()
    except Exception as exc:
        raise ArtifactError(f"{model_path}: cannot read the model's operators ({exc})") from None

    def dtype(i: int) -> str:
        return np.dtype(tensors[i]["dtype"]).name if i in tensors else "none"

    model_inputs = {d["index"] for d in interpreter.get_input_details()}
    model_outputs = {d["index"] for d in interpreter.get_output_details()}
    ops, not_int8 = [], []
    for op in op_details:
        ins = [i for i in op["inputs"] if i >= 0]
        outs = list(op["outputs"])
        entry = {
            "index": int(op["index"]), "op": op["op_name"],
            "inputs": [dtype(i) for i in ins], "outputs": [dtype(i) for i in outs],
        }
        ops.append(entry)
        touches_float = any(t in _FLOAT_TYPES for t in entry["inputs"] + entry["outputs"])
        if not touches_float or op["op_name"] in PLUMBING:
            continue
        if op["op_name"] == "QUANTIZE" and all(i in model_inputs for i in ins):
            continue
        if op["op_name"] == "DEQUANTIZE" and all(o in model_outputs for o in outs):
            continue
        not_int8.append(f"{entry['index']}:{entry['op']}")

    def io_entries(signature_details: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": name, "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "quantization": _quantization(d),
            }
            for name, d in signature_details.items()
        ]

    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        inputs, outputs = io_entries(runner.get_input_details()), io_entries(runner.get_output_details())
    else:
        inputs = io_entries({d["name"]: d for d in interpreter.get_input_details()})
        outputs = io_entries({d["name"]: d for d in interpreter.get_output_details()})
    return {
        "ops": ops,
        "op_counts": dict(collections.Counter(e["op"] for e in ops)),
        "inputs": inputs,
        "outputs": outputs,
        "fully_int8": not not_int8,
        "not_int8": not_int8,
    }


def weight_tensors(model_path: str | Path) -> list[dict[str, Any]]:
    """The int8 filters of FULLY_CONNECTED ops: name, int8 values and per-channel scales (for checks
    that the converter kept a graph's own int8 weights)."""
    interpreter = _interpreter(model_path, delegates=False)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        if op["op_name"] != "FULLY_CONNECTED" or len(op["inputs"]) < 2:
            continue
        t = tensors.get(op["inputs"][1])
        if t is None or np.dtype(t["dtype"]) != np.int8:
            continue
        scales = np.asarray(t["quantization_parameters"]["scales"], np.float32)
        found.append({"name": t["name"], "values": interpreter.get_tensor(t["index"]), "scales": scales})
    return found
