"""The quantized Graph lowered to a Core ML MIL program with coremltools' MIL builder: the graph with its
input shapes fixed from a sample (../static_graph.py), then one MIL op (or a few) per ONNX node, in
topological order (ops.py holds one function per ONNX op type).

Weights stay the graph's own: a DequantizeLinear of constant int8/int4 codes becomes a constexpr op holding
those codes, scales and zero points (weights.py); a QuantizeLinear/DequantizeLinear pair on an activation
becomes MIL's quantize/dequantize with the same scale and zero point. Core ML has no int64 tensors: integer
values are int32 (token ids fed as int32 by the runners)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedOperatorError
from .deployment import import_coremltools

ONNX_TO_MIL_DTYPE = {"FLOAT": "fp32", "FLOAT16": "fp16", "INT64": "int32", "INT32": "int32", "BOOL": "bool",
                     "INT8": "int8", "UINT8": "uint8"}


def mil_name(name: str) -> str:
    """An ONNX value name as a MIL identifier (letters, digits and underscores, not starting with a digit)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"v_{cleaned}"


def as_mil_constant(array: np.ndarray) -> np.ndarray:
    """A constant in a dtype MIL holds: int64 as int32 (refused when a value does not fit), float64 as fp32."""
    array = np.asarray(array)
    if array.dtype == np.int64:
        if array.size and (array.max() > np.iinfo(np.int32).max or array.min() < np.iinfo(np.int32).min):
            raise ModelError(f"an int64 constant {list(array.shape)} holds values beyond int32, which Core ML lacks")
        return array.astype(np.int32)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    return array


@dataclass
class Context:
    """What an op lowering sees: the MIL builder, values by ONNX name (MIL Vars, or numpy constants), the
    static shapes and ONNX dtypes of every value, and where the program is headed."""

    mb: Any
    deployment_target: str
    values: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # ONNX element type names: FLOAT, INT64, ...
    passthrough: dict[str, str] = field(default_factory=dict)  # DynamicQuantizeLinear outputs -> their float input

    def get(self, name: str):
        if name not in self.values:
            raise ModelError(f"value '{name}' is used before it is computed")
        return self.values[name]

    def const(self, name: str) -> np.ndarray | None:
        value = self.values.get(name)
        return value if isinstance(value, np.ndarray) else None

    def is_integer(self, name: str) -> bool:
        return self.dtypes.get(name, "FLOAT") in ("INT64", "INT32", "INT8", "UINT8")


def lower(model, feed: dict[str, np.ndarray], deployment_target: str):
    """(the MIL program, {ONNX input name: MIL name}, {ONNX output name: MIL name}) of a static onnx_ir model."""
    ct = import_coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from . import ops

    graph = model.graph
    unsupported = [node for node in graph if ops.lookup(node.op_type, node.domain) is None]
    if unsupported:
        node = unsupported[0]
        raise UnsupportedOperatorError(node.op_type, node.name, node.domain,
                                       f"no Core ML lowering (the Core ML backend lowers: {', '.join(ops.supported())})")
    from coremltools.converters.mil.mil import Function, Program

    mil_types = {"fp32": types.fp32, "int32": types.int32, "bool": types.bool, "fp16": types.fp16}
    input_names = {value.name: mil_name(value.name) for value in graph.inputs}
    placeholders = {}
    for value in graph.inputs:
        dtype = ONNX_TO_MIL_DTYPE.get(value.dtype.name)
        if dtype not in mil_types:
            raise ModelError(f"input '{value.name}' is {value.dtype.name}, which a Core ML model cannot take")
        placeholders[input_names[value.name]] = mb.placeholder(shape=tuple(feed[value.name].shape), dtype=mil_types[dtype])
    output_names = {value.name: mil_name(value.name) for value in graph.outputs}

    program = Program()
    with Function(placeholders, opset_version=getattr(ct.target, deployment_target)) as function:
        ctx = Context(mb, deployment_target)
        for value in graph.inputs:
            ctx.values[value.name] = function.inputs[input_names[value.name]]
        for value in graph.initializers.values():
            if value.const_value is not None:
                ctx.values[value.name] = as_mil_constant(value.const_value.numpy())
        for node in graph:
            for value in node.outputs:
                ctx.shapes[value.name] = tuple(int(d) for d in value.shape) if value.shape is not None else ()
                ctx.dtypes[value.name] = value.dtype.name if value.dtype is not None else "FLOAT"
        for value in graph.inputs:
            ctx.shapes[value.name], ctx.dtypes[value.name] = tuple(feed[value.name].shape), value.dtype.name
        for node in graph:
            lowering = ops.lookup(node.op_type, node.domain)
            try:
                results = lowering(ctx, node)
            except (ModelError, UnsupportedOperatorError):
                raise
            except Exception as exc:  # a lowering that cannot take this node's attributes or shapes
                raise UnsupportedOperatorError(node.op_type, node.name, node.domain,
                                               f"the Core ML lowering failed: {str(exc).splitlines()[0][:200]}") from None
            for value, result in zip(node.outputs, results):
                if value.name:
                    ctx.values[value.name] = result
        outputs = []
        for value in graph.outputs:
            result = ctx.get(value.name)
            if isinstance(result, np.ndarray):  # an output the graph computes from constants alone
                result = mb.const(val=result)
            outputs.append(mb.identity(x=result, name=output_names[value.name]))
        function.set_outputs(outputs)
    program.add_function("main", function)
    return program, input_names, output_names
