"""Find the parts of a transformer graph that quantization treats differently.

Structural matching only (no names), so graphs from any exporter are handled: a MatMul/Gemm with a
constant 2-D weight is a linear layer, a MatMul of two activations is attention (QKᵀ or probs·V), a
Gather from a constant 2-D table is an embedding."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

FLOAT = ir.DataType.FLOAT


@dataclasses.dataclass
class Linear:
    node: ir.Node
    weight: ir.Value  # the constant weight input
    weight_axis: int  # the output-channel axis of the weight array
    input_axis: int  # the weight axis that meets the activation's channels

    @property
    def activation(self) -> ir.Value:
        return self.node.inputs[0]

    def weight_array(self) -> np.ndarray:
        return self.weight.const_value.numpy()

    def k_by_n(self) -> np.ndarray:
        """The weight as [input channels, output channels] (a Gemm with transB stores its transpose)."""
        w = self.weight_array()
        return w if self.input_axis == 0 else w.T


def is_quantized_constant(value: ir.Value | None) -> bool:
    """A DequantizeLinear of a constant: a weight an earlier pass already quantized."""
    node = value.producer() if value is not None else None
    return node is not None and node.op_type == "DequantizeLinear" and node.inputs[0].const_value is not None


def linear_sites(graph: ir.Graph) -> list[ir.Node]:
    """MatMul/Gemm nodes whose weight is constant, float or already quantized."""
    return [
        n
        for n in graph
        if n.op_type in ("MatMul", "Gemm")
        and n.domain in ("", "ai.onnx")
        and n.inputs[1] is not None
        and (n.inputs[1].const_value is not None or is_quantized_constant(n.inputs[1]))
        and not (n.op_type == "Gemm" and n.attributes.get_int("transA", 0))
    ]


def linears(graph: ir.Graph) -> list[Linear]:
    """Linear layers whose weight is still a float constant."""
    found = []
    for node in graph:
        if node.op_type == "MatMul" and node.domain in ("", "ai.onnx"):
            w = node.inputs[1]
            if w is not None and w.const_value is not None and w.dtype == FLOAT and len(w.shape) == 2:
                found.append(Linear(node, w, weight_axis=1, input_axis=0))
        elif node.op_type == "Gemm" and node.domain in ("", "ai.onnx"):
            w = node.inputs[1]
            attrs = node.attributes
            if attrs.get_int("transA", 0) or w is None or w.const_value is None or w.dtype != FLOAT:
                continue
            trans_b = attrs.get_int("transB", 0)
            found.append(Linear(node, w, weight_axis=0 if trans_b else 1, input_axis=1 if trans_b else 0))
    return found


def linear_groups(graph: ir.Graph) -> dict[ir.Value, list[Linear]]:
    """Linear layers grouped by the activation they read (a layer's Q/K/V projections share one)."""
    groups: dict[ir.Value, list[Linear]] = {}
    for linear in linears(graph):
        groups.setdefault(linear.activation, []).append(linear)
    return groups


def output_linear(graph: ir.Graph) -> Linear | None:
    """The linear layer that makes the first graph output (a language model's logits), through at most a
    few elementwise ops after it (a logit soft-cap), if any."""
    value = graph.outputs[0] if graph.outputs else None
    by_node = {id(linear.node): linear for linear in linears(graph)}
    for _ in range(4):
        node = value.producer() if value is not None else None
        if node is None:
            return None
        if id(node) in by_node:
            return by_node[id(node)]
        if node.op_type not in ("Mul", "Div", "Tanh", "Add", "Cast"):
            return None
        value = node.inputs[0]
    return None


def activation_matmuls(graph: ir.Graph) -> list[ir.Node]:
    return [
        n
        for n in graph
        if n.op_type == "MatMul"
        and n.domain in ("", "ai.onnx")
        and all(v is not None and v.const_value is None and not is_quantized_constant(v) for v in n.inputs)
        and all(v.dtype in (FLOAT, None) for v in n.inputs)
    ]


def embeddings(graph: ir.Graph) -> list[ir.Node]:
    return [
        n
        for n in graph
        if n.op_type == "Gather"
        and n.inputs[0] is not None
        and n.inputs[0].const_value is not None
        and n.inputs[0].dtype == FLOAT
        and len(n.inputs[0].shape) == 2
        and n.attributes.get_int("axis", 0) == 0
    ]


def layernorm_producer(value: ir.Value) -> ir.Node | None:
    """The LayerNormalization that produces ``value`` with constant scale (and bias), if any."""
    node = value.producer()
    if node is None or node.op_type != "LayerNormalization":
        return None
    if len(node.outputs) > 1 and any(o.uses() for o in node.outputs[1:]):
        return None
    scale = node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if scale is None or scale.const_value is None or (bias is not None and bias.const_value is None):
        return None
    if node.attributes.get_int("axis", -1) != -1 and len(node.inputs[0].shape or []) - 1 != node.attributes.get_int("axis", -1):
        return None
    return node
