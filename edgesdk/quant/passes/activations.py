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
from ..patterns import activation_matmuls, linear_sites
from ..stats import TensorStats


def matmul_activation_inputs(graph: ir.Graph, attention: bool) -> list[tuple[ir.Node, int]]:
    """(node, input index) of every activation that feeds a matrix product we quantize."""
    sites = [(node, 0) for node in linear_sites(graph)]
    if attention:
        sites += [(node, i) for node in activation_matmuls(graph) for i in (0, 1)]
    return sites


class StaticActivationsPass(ir.passes.InPlacePass):
    def __init__(self, stats: dict[str, TensorStats], percentile: float | None = None, attention: bool = False):
        super().__init__()
        self.stats, self.percentile, self.attention = stats, percentile, attention
        self.ranges: dict[str, tuple[float, float]] = {}
        self.kept_float: dict[str, str] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        done: dict[str, ir.Value] = {}
        for node, index in matmul_activation_inputs(graph, self.attention):
            value = node.inputs[index]
            if value.name not in done:
                stats = self.stats.get(value.name)
                if stats is None:
                    continue
                low, high = stats.range(self.percentile)
                if not (np.isfinite(low) and np.isfinite(high)) or max(abs(low), abs(high)) > 1e30:
                    # e.g. a score tensor that carries the -inf/-3.4e38 of an attention mask: no int8 grid fits
                    self.kept_float[value.name] = f"range [{low:.3g}, {high:.3g}] fits no int8 grid"
                    continue
                self.ranges[value.name] = (low, high)
                scale, zero_point = asymmetric_uint8(low, high)
                s = editor.constant(f"{value.name}_scale", np.array(scale, np.float32))
                zp = editor.constant(f"{value.name}_zero_point", np.array(zero_point, np.uint8))
                q = editor.add("QuantizeLinear", [value, s, zp], hint=f"{value.name}_quantize")
                dq = editor.add("DequantizeLinear", [q.outputs[0], s, zp], hint=f"{value.name}_dequantize")
                done[value.name] = dq.outputs[0]
            node.replace_input_with(index, done[value.name])
        editor.finish()
        return ir.passes.PassResult(model, bool(done))


class DynamicActivationsPass(ir.passes.InPlacePass):
    def __init__(self, attention: bool = False):
        super().__init__()
        self.attention = attention
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        done: dict[str, ir.Value] = {}
        for node, index in matmul_activation_inputs(graph, self.attention):
            value = node.inputs[index]
            if value.name not in done:
                dyn = editor.add("DynamicQuantizeLinear", [value], hint=f"{value.name}_dynamic_quantize", outputs=3)
                dq = editor.add("DequantizeLinear", list(dyn.outputs), hint=f"{value.name}_dequantize")
                done[value.name] = dq.outputs[0]
            node.replace_input_with(index, done[value.name])
        self.count = len(done)
        editor.finish()
        return ir.passes.PassResult(model, bool(done))
