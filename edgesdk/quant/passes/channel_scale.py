"""Move a per-channel scale from an activation into the weights that read it: X·W = (X/s)·(s⊙W).

SmoothQuant (flatten activation outliers for int8) and AWQ (enlarge salient weight rows before int4
rounding) both divide the input channels of a group of linears (the layers reading one activation) by s and
multiply the matching weight rows by s. The division is folded at no cost into the gain of a producer that
scales channels — a LayerNormalization's scale and bias, an RMSNorm's final Mul by a constant gain — when
the group's linears are the activation's only readers; otherwise a Mul is inserted if allowed."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..patterns import Linear, layernorm_producer


def channel_gain_producer(value: ir.Value, channels: int) -> tuple[ir.Node, list[int]] | None:
    """The node producing ``value`` by scaling its ``channels`` channels with constants, and which inputs
    hold them. The count comes from the reading linears' weights: graphs built without shape inference
    (the causal-LM builder's) do not annotate the activation's shape."""
    norm = layernorm_producer(value)
    if norm is not None:
        return norm, [i for i in (1, 2) if i < len(norm.inputs) and norm.inputs[i] is not None]
    node = value.producer()
    if node is None or node.op_type != "Mul" or len(node.outputs[0].uses()) == 0:
        return None
    for index, other in ((1, 0), (0, 1)):
        gain = node.inputs[index]
        if gain is not None and gain.const_value is not None and node.inputs[other].const_value is None \
                and gain.shape is not None and len(gain.shape) == 1 and gain.shape[0] == channels:
            return node, [index]
    return None


def scaled_weight(linear: Linear, scale: np.ndarray) -> ir.LazyTensor:
    """The weight with its input channels multiplied by ``scale``, computed when read: the pass that
    quantizes it next reads it once, so a whole model's rescaled float copies never sit in memory."""
    source = linear.weight.const_value
    shape = [1, 1]
    shape[linear.input_axis] = -1
    return ir.LazyTensor(lambda: ir.tensor(source.numpy() * scale.reshape(shape)), dtype=ir.DataType.FLOAT,
                         shape=ir.Shape(source.shape))


def can_rescale(activation: ir.Value, group: list[Linear], insert_mul: bool) -> bool:
    # A weight another node also reads (a tied embedding/output table) would be stored twice once scaled
    # for this layer alone.
    if any(len(linear.weight.uses()) > 1 for linear in group):
        return False
    return insert_mul or _foldable(activation, group)


def rescale(editor: GraphEditor, activation: ir.Value, group: list[Linear], scale: np.ndarray) -> str:
    """Divide ``activation``'s channels by ``scale`` and multiply the group's weight rows by it; returns
    how the division was done ("folded" or "mul"). Call ``can_rescale`` first."""
    for linear in group:
        # a new constant, not an in-place edit: the float graph keeps the original
        smoothed = editor.constant(f"{linear.weight.name}_scaled", scaled_weight(linear, scale))
        linear.node.replace_input_with(1, smoothed)
    if _foldable(activation, group):
        producer, indices = channel_gain_producer(activation, len(scale))
        for index in indices:
            param = producer.inputs[index]
            new = editor.constant(f"{param.name}_scaled", (param.const_value.numpy() / scale).astype(np.float32))
            producer.replace_input_with(index, new)
        return "folded"
    inverse = editor.constant(f"{activation.name}_inverse_scale", (1.0 / scale).astype(np.float32))
    mul = editor.add("Mul", [activation, inverse], hint=f"{activation.name}_scaled")
    for linear in group:
        linear.node.replace_input_with(0, mul.outputs[0])
    return "mul"


def _foldable(activation: ir.Value, group: list[Linear]) -> bool:
    readers_are_group = {id(u.node) for u in activation.uses()} == {id(l.node) for l in group}
    if not readers_are_group or activation.is_graph_output():
        return False
    found = channel_gain_producer(activation, group[0].weight.shape[group[0].input_axis])
    # the gain must be this producer's alone, or another reader of it would see it rescaled
    return found is not None and all(len(found[0].inputs[i].uses()) == 1 for i in found[1])
