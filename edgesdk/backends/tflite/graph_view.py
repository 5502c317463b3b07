"""The ONNX graph as plain data for lowering: nodes in topological order with their attributes as Python
values, constants as numpy (model-local functions inlined first), and the check that every node has a
TFLite lowering (ops.lookup) before any tracing."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np

from ...errors import UnsupportedOperatorError
from ...graph import Graph
from . import ops


@dataclasses.dataclass
class Node:
    op_type: str
    domain: str
    name: str
    inputs: list[str]  # "" for an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any]


@dataclasses.dataclass
class GraphView:
    """The ONNX graph as plain data: nodes in topological order, constants as numpy."""

    nodes: list[Node]
    constants: dict[str, np.ndarray]
    inputs: list[tuple[str, np.dtype]]
    outputs: list[str]
    opset: int

    def consumers(self) -> dict[str, list[Node]]:
        found: dict[str, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    found[name].append(node)
        return found

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def static_names(self) -> set[str]:
        """Values known at conversion time: constants, shapes (static), and what is computed from them."""
        known = set(self.constants)
        for node in self.nodes:
            if node.op_type in ("Shape", "Size") or all(not n or n in known for n in node.inputs):
                known.update(o for o in node.outputs if o)
        return known

    def value(self, name: str) -> np.ndarray | None:
        """A constant's value when it is an initializer or a Constant node (before any tracing)."""
        if name in self.constants:
            return self.constants[name]
        node = self._constant_nodes().get(name)
        return None if node is None else np.asarray(node.attrs["value"])

    def _constant_nodes(self) -> dict[str, Node]:
        if getattr(self, "_constant_cache", None) is None:
            self._constant_cache = {
                n.outputs[0]: n for n in self.nodes if n.op_type == "Constant" and "value" in n.attrs
            }
        return self._constant_cache


def _attr_value(attr) -> Any:
    import onnx_ir as ir

    value = attr.value
    if attr.type == ir.AttributeType.TENSOR:
        return _tensor_numpy(value)
    if attr.type == ir.AttributeType.TENSORS:
        return [_tensor_numpy(t) for t in value]
    if attr.type in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
        return list(value)
    return value


def _tensor_numpy(tensor) -> np.ndarray:
    array = np.asarray(tensor.numpy())
    if array.dtype.name in ("int4", "uint4"):  # ml_dtypes: one value per byte as int8/uint8
        array = array.astype(np.int8 if array.dtype.name == "int4" else np.uint8)
    return array


def read_graph(graph: Graph) -> GraphView:
    import onnx_ir as ir

    model = graph.model
    if model.functions:
        model = ir.serde.deserialize_model(ir.serde.serialize_model(model))
        ir.passes.common.InlinePass()(model)
    g = model.graph
    constants = {name: _tensor_numpy(v.const_value) for name, v in g.initializers.items() if v.const_value is not None}
    nodes = []
    for index, n in enumerate(g):
        nodes.append(
            Node(
                n.op_type,
                "" if n.domain == "ai.onnx" else n.domain,
                n.name or f"{n.op_type}_{index}",
                [v.name if v is not None else "" for v in n.inputs],
                [v.name for v in n.outputs],
                {k: _attr_value(a) for k, a in n.attributes.items()},
            )
        )
    inputs = []
    for v in g.inputs:
        if v.name in constants:
            continue
        dtype = ops.ONNX_DTYPES.get(int(v.dtype)) if v.dtype is not None else None
        inputs.append((v.name, np.dtype(dtype) if dtype else np.dtype(np.float32)))
    return GraphView(nodes, constants, inputs, [v.name for v in g.outputs], model.opset_imports.get("", 1))


def check_supported(view: GraphView) -> None:
    """Raise UnsupportedOperatorError for the first node no lowering covers (before any tracing)."""
    for node in view.nodes:
        if ops.lookup(node.op_type, node.domain) is None:
            detail = "no TFLite lowering for this operator"
            if node.op_type in ("If", "Loop", "Scan"):
                detail = "control flow (subgraphs) cannot be lowered to TFLite"
            raise UnsupportedOperatorError(node.op_type, node.name, node.domain, detail)


def other_input(node: Node, name: str) -> str:
    """The input of a two-input node that is not ``name``."""
    a, b = node.inputs[:2]
    return b if a == name else a
