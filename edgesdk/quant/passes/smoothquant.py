"""SmoothQuant: move activation outliers into the weights, channel by channel.

Transformer activations have a few channels far larger than the rest (the residual stream after
LayerNorm is the worst), so one per-tensor int8 scale wastes its levels on them. For a linear layer
X·W, dividing channel j of X by s_j and multiplying row j of W by s_j leaves the product unchanged while
flattening X; s_j = max|X_j|^α / max|W_j|^(1-α). When X comes from a LayerNormalization, the division is
folded into its scale and bias at no cost; otherwise a Mul is inserted (only if ``insert_mul``)."""

from __future__ import annotations

import collections

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..patterns import Linear, layernorm_producer, linears
from ..stats import TensorStats


def outlier_ratio(channel_absmax: np.ndarray) -> float:
    median = float(np.median(channel_absmax))
    return float(channel_absmax.max()) / median if median > 0 else float("inf")


def _scaled(linear: Linear, scale: np.ndarray) -> ir.LazyTensor:
    """The weight with its input channels multiplied by ``scale``, computed when read: the pass that
    quantizes it next reads it once, so a whole model's smoothed float copies never sit in memory."""
    source = linear.weight.const_value
    shape = [1, 1]
    shape[linear.input_axis] = -1
    return ir.LazyTensor(lambda: ir.tensor(source.numpy() * scale.reshape(shape)), dtype=ir.DataType.FLOAT,
                         shape=ir.Shape(source.shape))


class SmoothQuantPass(ir.passes.InPlacePass):
    def __init__(
        self, stats: dict[str, TensorStats], alpha: float = 0.5, insert_mul: bool = False, min_outlier_ratio: float = 0.0
    ):
        super().__init__()
        self.stats, self.alpha, self.insert_mul, self.min_outlier_ratio = stats, alpha, insert_mul, min_outlier_ratio
        self.smoothed: list[str] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        groups: dict[ir.Value, list[Linear]] = collections.defaultdict(list)
        for linear in linears(graph):
            groups[linear.activation].append(linear)
        modified = False
        for activation, group in groups.items():
            stats = self.stats.get(activation.name)
            if stats is None or stats.channel_absmax is None:
                continue
            # Without outlier channels (largest channel range / median one below the ratio) a per-tensor
            # scale already fits, and an inserted Mul would only cost time.
            if outlier_ratio(stats.channel_absmax) < self.min_outlier_ratio:
                continue
            # Every reader of X must be a linear of this group, or the others would see a rescaled X.
            readers_are_group = {id(u.node) for u in activation.uses()} == {id(l.node) for l in group}
            producer = layernorm_producer(activation)
            foldable = producer is not None and readers_are_group
            if not foldable and not self.insert_mul:
                continue
            # A weight another node also reads (a tied embedding/output table) would be stored twice once
            # scaled for this layer alone: leave that group unsmoothed.
            if any(len(l.weight.uses()) > 1 for l in group):
                continue
            act_max = stats.channel_absmax.astype(np.float64)
            weight_max = np.max([np.abs(l.weight_array()).max(axis=1 - l.input_axis) for l in group], axis=0)
            if act_max.shape != weight_max.shape:
                continue
            scale = np.power(np.maximum(act_max, 1e-5), self.alpha) / np.power(np.maximum(weight_max, 1e-5), 1 - self.alpha)
            scale = np.clip(scale, 1e-2, 1e3).astype(np.float32)
            for linear in group:
                # a new constant, not an in-place edit: a weight tied to another layer must stay as it is there
                smoothed = editor.constant(f"{linear.weight.name}_smoothed", _scaled(linear, scale))
                linear.node.replace_input_with(1, smoothed)
            if foldable:
                for index in (1, 2):
                    if index < len(producer.inputs) and producer.inputs[index] is not None:
                        param = producer.inputs[index]
                        new = editor.constant(f"{param.name}_smoothed", (param.const_value.numpy() / scale).astype(np.float32))
                        producer.replace_input_with(index, new)
            else:
                inverse = editor.constant(f"{activation.name}_smooth_inv", (1.0 / scale).astype(np.float32))
                mul = editor.add("Mul", [activation, inverse], hint=f"{activation.name}_smooth")
                for linear in group:
                    linear.node.replace_input_with(0, mul.outputs[0])
            self.smoothed.append(activation.name)
            modified = True
        editor.finish()
        return ir.passes.PassResult(model, modified)
