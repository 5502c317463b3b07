"""Every other node: ScatterND into state (written in place), and a kernel from ops.py's TE lowering."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedOperatorError
from . import ops
from .builder import Builder, Call


def scatter_in_place(b: Builder, node, step: int) -> None:
    """ScatterND into state (builder.in_place): its output is a view of the state, the kernel writes the rows."""
    data, indices, updates = node.inputs[:3]
    if data.name not in b.in_place:
        raise UnsupportedOperatorError("ScatterND", node.name, detail="the C backend writes a ScatterND in place: "
                                       "its data must be a graph input read by nothing else (a static KV cache)")
    b.alias[node.outputs[0].name] = data.name
    b.value(data, step)
    args = [b.operand(indices, step), b.operand(updates, step), b.value(node.outputs[0], step, defining=True)]
    shape, index_shape = [tuple(int(d) for d in v.shape) for v in (data, indices)]
    dtype, index_dtype = data.dtype.numpy().name, indices.dtype.numpy().name
    symbol = b.kernel(f"scatter_nd_in_place data={shape}:{dtype} indices={index_shape}:{index_dtype}",
                      lambda s: ops.scatter_nd_in_place(s, shape, index_shape, index_dtype, dtype))
    b.entry.calls.append(Call(node.name, symbol, args, op="ScatterND"))


class _Context:
    """What a lowering may add to its kernel: constants it reads from the weights blob."""

    def __init__(self, builder: Builder, node):
        self.builder, self.node = builder, node
        self.placeholders: list = []
        self.tensors: list[int] = []
        self.signature: list[str] = []

    def constant(self, array: np.ndarray, name: str):
        from tvm import te

        self.placeholders.append(te.placeholder(array.shape, array.dtype.name, name=name))
        self.tensors.append(self.builder.weight(array, f"{self.node.name}.{name}"))
        self.signature.append(f"{name}:{array.dtype}{array.shape}")
        return self.placeholders[-1]


def generic(b: Builder, node, step: int) -> None:
    from tvm import te

    lowering = ops.LOWERINGS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if lowering is None:
        raise UnsupportedOperatorError(node.op_type, node.name, node.domain if node.domain not in ("", "ai.onnx") else "",
                                       detail="no C lowering")
    consts = [b.const(v) for v in node.inputs]
    key_parts = [node.op_type, repr(sorted((k, repr(a.value)) for k, a in node.attributes.items()))]
    args: list[int] = []
    specs: list[tuple[str, Any]] = []  # ("placeholder", shape/dtype) | ("scalar", array) | ("none", None)
    for value, const in zip(node.inputs, consts):
        if value is None:
            specs.append(("none", None))
            key_parts.append("-")
        elif const is not None and const.size <= 1:
            specs.append(("scalar", const))
            key_parts.append(f"={const.dtype}{const.shape}:{const.reshape(-1).tolist()}")
        elif const is not None:
            specs.append(("constant", const))
            key_parts.append(f"c{const.dtype}{const.shape}")
        else:
            shape = tuple(int(d) for d in value.shape)
            specs.append(("placeholder", (shape, value.dtype.numpy().name)))
            key_parts.append(f"{value.dtype.numpy().name}{shape}")
    # inputs that are values or large constants are arguments, in order
    for value, (kind, spec) in zip(node.inputs, specs):
        if kind == "placeholder":
            args.append(b.value(value, step))
        elif kind == "constant":
            args.append(b.operand(value, step))
    outputs = [o for o in node.outputs if o is not None and o.name]
    extra = [o.name for o in outputs[1:] if o.uses() or o in node.graph.outputs]
    if extra:
        raise UnsupportedOperatorError(node.op_type, node.name, detail=f"output {extra[0]} is read (the C "
                                       "lowering computes the first output only)")
    context = _Context(b, node)
    placeholders = []
    tensors = []
    for i, (kind, spec) in enumerate(specs):
        if kind == "none":
            tensors.append(None)
        elif kind == "scalar":
            tensors.append(ops.scalar(spec))
        else:
            shape, dtype = (spec.shape, spec.dtype.name) if kind == "constant" else spec
            placeholders.append(te.placeholder(shape, dtype, name=f"in{i}"))
            tensors.append(placeholders[-1])
    try:
        result = lowering(node, tensors, consts, context)[0]
    except ValueError as exc:
        raise UnsupportedOperatorError(node.op_type, node.name, detail=str(exc)) from None
    dtype = outputs[0].dtype.numpy().name
    if result.dtype != dtype:
        from tvm import topi

        result = topi.cast(result, dtype)
    # Built for every node (a lowering may add constants of its own); nodes of one key share one kernel.
    key = "|".join([*key_parts, "->" + dtype, *context.signature])
    def make(symbol):
        func = te.create_prim_func([*placeholders, *context.placeholders, result]).with_attr("global_symbol", symbol)
        schedule = ops.SCHEDULES.get(node.op_type)
        return schedule(func) if schedule else func

    symbol = b.kernel(key, make)
    args += context.tensors
    args.append(b.value(outputs[0], step, defining=True))
    b.entry.calls.append(Call(node.name, symbol, args, op=node.op_type))

