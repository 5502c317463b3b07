"""Activation quantization: static (calibrated ranges stored as QuantizeLinear/DequantizeLinear pairs)
or dynamic (DynamicQuantizeLinear, range computed at run time).

Only the inputs of matrix products are quantized; everything between them (LayerNorm, Softmax, GELU,
the attention-mask Add, residual Adds) stays float, since those ops are cheap and carry the ranges that
int8 cannot hold (the mask Add reaches -3.4e38)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..numerics import asymmetric_uint8
from ..observers import Ranges
from ..patterns import activation_matmuls, linear_sites


def matmul_activation_inputs(graph: ir.Graph, attention: bool) -> list[tuple[ir.Node, int]]:
    """(node, input index) of every activation that feeds a matrix product we quantize."""
    sites = [(node, 0) for node in linear_sites(graph)]
    if attention:
        sites += [(node, i) for node in activation_matmuls(graph) for i in (0, 1)]
    return sites


class _MatmulInputsPass(ir.passes.InPlacePass):
    """Replace each matmul input by its quantize→dequantize; a value read by several matmuls (the QKV
    projections share one) is quantized once. Subclasses say how, or None to leave a value float. Nodes
    named in ``skip`` keep reading the float value."""

    def __init__(self, attention: bool = False, skip: set[str] | None = None):
        super().__init__()
        self.attention, self.skip = attention, skip or set()
        self.count = 0

    def quantized(self, editor: GraphEditor, value: ir.Value) -> ir.Value | None:
        raise NotImplementedError

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        done: dict[str, ir.Value | None] = {}
        for node, index in matmul_activation_inputs(graph, self.attention):
            if node.name in self.skip:
                continue
            value = node.inputs[index]
            if value.name not in done:
                done[value.name] = self.quantized(editor, value)
            if done[value.name] is not None:
                node.replace_input_with(index, done[value.name])
        self.count = sum(v is not None for v in done.values())
        editor.finish()
        return ir.passes.PassResult(model, bool(self.count))


class StaticActivationsPass(_MatmulInputsPass):
    def __init__(self, stats: dict[str, Ranges], percentile: float | None = None, attention: bool = False,
                 skip: set[str] | None = None):
        super().__init__(attention, skip)
        self.stats, self.percentile = stats, percentile
        self.ranges: dict[str, tuple[float, float]] = {}
        self.kept_float: dict[str, str] = {}

    def quantized(self, editor: GraphEditor, value: ir.Value) -> ir.Value | None:
        stats = self.stats.get(value.name)
        if stats is None:
            return None
        low, high = stats.range(self.percentile)
        if not (np.isfinite(low) and np.isfinite(high)) or max(abs(low), abs(high)) > 1e30:
            # e.g. a score tensor that carries the -inf/-3.4e38 of an attention mask: no int8 grid fits
            self.kept_float[value.name] = f"range [{low:.3g}, {high:.3g}] fits no int8 grid"
            return None
        self.ranges[value.name] = (low, high)
        scale, zero_point = asymmetric_uint8(low, high)
        s = editor.constant(f"{value.name}_scale", np.array(scale, np.float32))
        zp = editor.constant(f"{value.name}_zero_point", np.array(zero_point, np.uint8))
        q = editor.add("QuantizeLinear", [value, s, zp], hint=f"{value.name}_quantize")
        return editor.add("DequantizeLinear", [q.outputs[0], s, zp], hint=f"{value.name}_dequantize").outputs[0]


class DynamicActivationsPass(_MatmulInputsPass):
    def quantized(self, editor: GraphEditor, value: ir.Value) -> ir.Value | None:
        dyn = editor.add("DynamicQuantizeLinear", [value], hint=f"{value.name}_dynamic_quantize", outputs=3)
        return editor.add("DequantizeLinear", list(dyn.outputs), hint=f"{value.name}_dequantize").outputs[0]
