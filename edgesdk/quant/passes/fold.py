"""Fold constant subgraphs into initializers, so weights computed in the graph look like weights.

Other exporters and tools store weights as e.g. Cast(int8 initializer) · scale, or Transpose(W); the
quantization passes recognise a linear layer by a constant weight input, so such subgraphs are evaluated
once here. Nodes are evaluated with the ONNX reference implementation, one at a time."""

from __future__ import annotations

import onnx_ir as ir

from ..edit import GraphEditor

# Ops worth folding: the ones that compute weights from stored tensors. Shape arithmetic is left to runtimes.
FOLDABLE = {"Cast", "Mul", "Div", "Add", "Sub", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "DequantizeLinear"}


class FoldConstantWeightsPass(ir.passes.InPlacePass):
    def __init__(self, include_dequantize: bool = False):
        super().__init__()
        self.include_dequantize = include_dequantize
        self.folded = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        from onnx.reference import ReferenceEvaluator

        graph = model.graph
        editor = GraphEditor(graph)
        opset = model.opset_imports.get("", 18)
        for node in list(graph):
            if node.domain not in ("", "ai.onnx") or node.op_type not in FOLDABLE or len(node.outputs) != 1:
                continue
            if node.op_type == "DequantizeLinear" and not self.include_dequantize:
                continue
            inputs = [v for v in node.inputs if v is not None]
            if not inputs or any(v.const_value is None for v in inputs) or node.outputs[0].is_graph_output():
                continue
            # Only fold what feeds compute with a tensor of real size (a weight), not tiny shape constants.
            if max(v.const_value.size for v in inputs) < 64:
                continue
            proto = _node_model(node, opset)
            result = ReferenceEvaluator(proto).run(None, {})[0]
            value = editor.constant(f"{node.outputs[0].name}_folded", result)
            node.outputs[0].replace_all_uses_with(value)
            graph.remove(node, safe=True)
            self.folded += 1
        editor.finish()
        return ir.passes.PassResult(model, bool(self.folded))


def _node_model(node: ir.Node, opset: int):
    """A one-node ONNX model whose inputs are the node's constant inputs as initializers."""
    import onnx

    inits = []
    names = []
    for i, value in enumerate(node.inputs):
        if value is None:
            names.append("")
            continue
        name = f"in{i}"
        inits.append(ir.serde.serialize_tensor(value.const_value))
        inits[-1].name = name
        names.append(name)
    attrs = [ir.serde.serialize_attribute(a) for a in node.attributes.values()]
    proto_node = onnx.helper.make_node(node.op_type, names, ["out"])
    proto_node.attribute.extend(attrs)
    out = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.UNDEFINED, None)
    graph = onnx.helper.make_graph([proto_node], "fold", [], [out], initializer=inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=10)
