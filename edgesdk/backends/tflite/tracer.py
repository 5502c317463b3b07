"""Tracing an edgesdk GraphView into TF ops (the modes and ranges are described in lowering.py):
``Context`` is what each op lowering sees, ``Tracer`` walks the view once per trace."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedOperatorError, first_line
from . import ops
from .graph_view import GraphView, Node, other_input
from .groups import ChannelPlan, Grouped, concatenated, slices, unpermute
from .tensors import import_tf, is_const, is_float, shape_of

MODES = ("fp32", "dynamic", "int8")
MASK_VALUE = -1.0e4  # stands for float32 lowest / -inf in attention masks of int8 models
_HUGE = 1.0e30


# -------------------------------------------------------------------------------------------- tracing


def signature_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^0-9A-Za-z_]", "_", name) or "value"
    if not base[0].isalpha():
        base = f"t_{base}"
    candidate, i = base, 1
    while candidate in taken:
        candidate, i = f"{base}_{i}", i + 1
    taken.add(candidate)
    return candidate


class Context:
    """What a lowering sees of the tracer (see ops.py)."""

    def __init__(self, tracer: Tracer):
        self.tracer = tracer
        self.int8 = tracer.mode == "int8"
        self.opset = tracer.view.opset
        self.mask_value = MASK_VALUE
        self.node_name = self.op_type = self.key = ""
        self.num_outputs = 1
        self.out_groups: list[np.ndarray] | None = None  # set: produce the output as these channel groups
        self.input_names: list[str] = []
        self.output_names: list[str] = []

    def q(self, tensor, tag: str, fixed: tuple[float, float] | None = None):
        """``tensor`` with its own int8 range (observed), or the ``fixed`` range when given."""
        return self.tracer.tap(tensor, f"{self.key}/{tag}", fixed=fixed)

    def observed_range(self, tag: str) -> tuple[float, float] | None:
        """The calibration range of this node's tap ``tag`` (None while observing, or when left float)."""
        if self.tracer.observing or self.tracer.ranges is None:
            return None
        return self.tracer.ranges.get(f"{self.key}/{tag}")

    def int_range(self, tensor, tag: str):
        return self.tracer.int_range(tensor, f"{self.key}/{tag}")

    def constant(self, array: np.ndarray) -> np.ndarray:
        return self.tracer.constant(array)

    def merged(self, value):
        """A Grouped value as one tensor (anything else as it is)."""
        return self.tracer.merge(value) if isinstance(value, Grouped) else value

    def joined(self, value: Grouped):
        """A Grouped value as one tensor in group order, and that channel order (see Tracer.joined)."""
        return self.tracer.joined(value)

    def merged_shape(self, value) -> list[int] | None:
        """The shape of a float tensor (grouped or not), None for constants and non-float values."""
        if isinstance(value, Grouped):
            return shape_of(value.parts[0])[:-1] + [value.channels]
        return None if is_const(value) or not is_float(value) else shape_of(value)

    def range_of(self, tensor) -> tuple[float, float] | None:
        """The int8 range already given to ``tensor`` (when it is a FakeQuant output), else None."""
        if is_const(tensor) or self.tracer.observing or getattr(tensor, "op", None) is None:
            return None
        if tensor.op.type != "FakeQuantWithMinMaxArgs":
            return None
        return float(tensor.op.get_attr("min")), float(tensor.op.get_attr("max"))

    def mark_mask(self, tensor, keep) -> None:
        """``tensor`` is an additive attention mask: 0 where ``keep``, a huge negative elsewhere."""
        self.tracer.masks[id(tensor)] = keep

    def mask_keep(self, value):
        """The keep-condition of an additive mask (a marked tensor or a constant of 0 / huge negatives)."""
        if is_const(value):
            if not is_float(value) or np.size(value) < 2:
                return None
            array = np.asarray(value)
            low = array <= MASK_VALUE / 2
            return (array == 0) if low.any() and ((array == 0) | low).all() else None
        return self.tracer.masks.get(id(value))

    def remember_norm(self, parts: dict[str, Any]) -> None:
        """A normalization's int8 intermediates, so a following per-channel scale can start from them."""
        self.tracer.norms[self.output_names[0]] = parts

    def norm_of(self, index: int) -> dict[str, Any] | None:
        """What remember_norm() kept for input ``index``, if a normalization produced it."""
        return self.tracer.norms.get(self.input_names[index]) if index < len(self.input_names) else None


class Tracer:
    """Walks the view once per trace; ``observing`` returns every tap instead of fake-quantizing it."""

    def __init__(
        self, view: GraphView, shapes: dict[str, tuple[int, ...]], mode: str, ranges=None, int_ranges=None, plan=None
    ):
        if mode not in MODES:
            raise ModelError(f"unknown lowering mode '{mode}' (known: {', '.join(MODES)})")
        self.view, self.shapes, self.mode = view, shapes, mode
        self.ranges = ranges
        self.int_ranges = int_ranges or {}
        self.plan = plan or ChannelPlan()
        self.observing = mode == "int8" and ranges is None
        self.observed: dict[str, Any] = {}
        self.observed_int: dict[str, Any] = {}
        self.folding = False
        self.consumers = view.consumers()
        self.producers = view.producers()
        self.static = view.static_names()
        self.alias, self.pinned, self.skipped = self._activation_qdq()
        self.softmax_inputs = {
            n.inputs[0] for n in view.nodes if n.op_type == "Softmax" and n.attrs.get("axis", -1) in (-1,)
        }
        taken: set[str] = set()
        self.input_names = {name: signature_name(name, taken) for name, _ in view.inputs}
        taken = set()
        self.output_names = {name: signature_name(name, taken) for name in view.outputs}
        self.tap_tensor: dict[str, str] = {}  # tap key -> ONNX tensor name (for range rules)
        self.masks: dict[int, Any] = {}
        self.norms: dict[str, dict[str, Any]] = {}
        self._merged: dict[int, Any] = {}
        self._joined: dict[int, Any] = {}
        self._names: dict[int, str] = {}

    # -- activation quantize/dequantize pairs ------------------------------------------------------

    def _activation_qdq(self):
        """(alias, pinned, skipped): DequantizeLinear outputs that stand for their QuantizeLinear's input,
        the graph's ranges for those inputs (int8), and the Q/DQ nodes the trace leaves out."""
        alias: dict[str, str] = {}
        pinned: dict[str, tuple[float, float]] = {}
        skipped: set[int] = set()
        if self.mode == "fp32":
            return alias, pinned, skipped
        view = self.view
        for node in view.nodes:
            if node.op_type not in ("QuantizeLinear", "DynamicQuantizeLinear") or node.inputs[0] in view.constants:
                continue
            users = self.consumers.get(node.outputs[0], [])
            if not users or any(u.op_type != "DequantizeLinear" or u.inputs[0] != node.outputs[0] for u in users):
                continue
            if any(out in view.outputs for out in node.outputs):
                continue
            if node.op_type == "QuantizeLinear":
                scale = view.value(node.inputs[1])
                zp = view.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else np.array(0, np.uint8)
                if scale is None or zp is None or scale.size != 1 or zp.size != 1:
                    continue  # per-axis activation quantization: simulated as written
                if any(not np.array_equal(view.value(u.inputs[1]), scale) for u in users):
                    continue
                if self.mode == "int8":
                    low, high = (0, 255) if zp.dtype == np.uint8 else (-128, 127)
                    s, z = float(scale.reshape(())), float(zp.reshape(()))
                    pinned.setdefault(node.inputs[0], ((low - z) * s, (high - z) * s))
            elif any(self.consumers.get(o) for o in node.outputs[1:] if o) and len(users) != 1:
                continue
            skipped.add(id(node))
            for u in users:
                skipped.add(id(u))
                alias[u.outputs[0]] = node.inputs[0]
        return alias, pinned, skipped

    # -- taps ----------------------------------------------------------------------------------------

    def constant(self, array: np.ndarray) -> np.ndarray:
        if self.mode == "int8" and np.issubdtype(array.dtype, np.floating) and (array <= -_HUGE).any():
            array = np.where(array <= -_HUGE, np.asarray(MASK_VALUE, array.dtype), array)
        return array

    def tap(self, tensor, key: str, onnx_name: str | None = None, fixed: tuple[float, float] | None = None):
        if self.mode != "int8" or self.folding or is_const(tensor) or not is_float(tensor):
            return tensor
        if fixed is None and onnx_name is not None and onnx_name in self.pinned:
            fixed = self.pinned[onnx_name]
        if fixed is not None:
            low, high = min(float(fixed[0]), 0.0), max(float(fixed[1]), 0.0)
            return _fake_quant(tensor, low, high, key)
        if onnx_name is not None:
            self.tap_tensor[key] = onnx_name
        if self.observing:
            self.observed[key] = tensor
            return tensor
        if key not in self.ranges:
            raise ModelError(f"internal: no int8 range observed for '{key}'")
        if self.ranges[key] is None:  # left float on purpose (error analysis)
            return tensor
        low, high = self.ranges[key]
        return _fake_quant(tensor, low, high, key)

    def int_range(self, tensor, key: str):
        if self.folding or is_const(tensor):
            return None
        if self.observing:
            self.observed_int[key] = tensor
            return None
        return self.int_ranges.get(key)

    def _skip_tap(self, node: Node, out: str) -> bool:
        """No range of its own for a MatMul output whose only use is an Add that the converter folds it
        into: a constant bias (one FULLY_CONNECTED), or an attention mask (the masked select takes the
        scores' range)."""
        users = self.consumers.get(out, [])
        if node.op_type not in ("MatMul", "Gemm") or len(users) != 1 or users[0].op_type != "Add":
            return False
        if out in self.view.outputs or out in self.pinned:
            return False
        other = other_input(users[0], out)
        if len(node.inputs) > 1 and node.inputs[1] in self.static and other in self.static:
            return True
        mask = self.producers.get(other)
        return mask is not None and mask.op_type == "Where" and all(i in self.static for i in mask.inputs[1:])

    def joined(self, value: Grouped):
        """(the groups concatenated with their own range, in group order; that channel order)."""
        order = np.concatenate(value.index)
        if value.joined is not None:
            return value.joined, order
        if id(value) not in self._joined:
            name = self._names.get(id(value), f"grouped{len(self._joined)}")
            pinned = name if name in self.pinned else None
            self._joined[id(value)] = concatenated(value, lambda t: self.tap(t, f"merge:{name}", pinned))
        return self._joined[id(value)], order

    def merge(self, value: Grouped):
        """A Grouped value as one tensor, back in channel order."""
        if id(value) not in self._merged:
            joined, _ = self.joined(value)
            self._merged[id(value)] = unpermute(joined, value.index)
        return self._merged[id(value)]

    # -- the walk --------------------------------------------------------------------------------------

    def body(self, *args):
        tf = import_tf()
        view = self.view
        self.masks, self.norms, self._merged, self._joined, self._names = {}, {}, {}, {}, {}
        env: dict[str, Any] = {}
        for (name, _), arg in zip(view.inputs, args):
            env[name] = self.tap(arg, f"input:{name}", name)
        for name, array in view.constants.items():
            env[name] = self.constant(array)
        ctx = Context(self)
        for index, node in enumerate(view.nodes):
            if id(node) in self.skipped:
                continue
            lowering = ops.lookup(node.op_type, node.domain)
            values = [self._lookup(env, n) if n else None for n in node.inputs]
            while values and values[-1] is None:
                values.pop()
            if not lowering.grouped:
                values = [ctx.merged(v) for v in values]
            ctx.node_name, ctx.op_type, ctx.key = node.name, node.op_type, f"{index}:{node.name}"
            ctx.num_outputs = len(node.outputs)
            ctx.out_groups = self.plan.grouped_values.get(node.outputs[0])
            ctx.input_names, ctx.output_names = node.inputs, node.outputs
            try:
                if all(v is None or is_const(v) for v in values):
                    self.folding = True
                    with tf.init_scope():
                        result = lowering.fn(ctx, values, node.attrs)
                        result = tuple(_to_numpy(r) for r in (result if isinstance(result, tuple) else (result,)))
                    self.folding = False
                else:
                    result = lowering.fn(ctx, values, node.attrs)
                    result = result if isinstance(result, tuple) else (result,)
            except (ModelError, UnsupportedOperatorError):
                raise
            except Exception as exc:
                self.folding = False
                raise ModelError(f"cannot lower node '{node.name}' ({node.op_type}): {first_line(exc)}") from None
            for i, (out, value) in enumerate(zip(node.outputs, result)):
                if out:
                    env[out] = self._output(node, lowering, ctx.key, i, out, value)
        outputs = {}
        for name in view.outputs:
            value = ctx.merged(self._lookup(env, name))
            outputs[self.output_names[name]] = tf.identity(tf.constant(value) if is_const(value) else value)
        if self.observing:
            return outputs, dict(self.observed), dict(self.observed_int)
        return outputs

    def _output(self, node: Node, lowering, key: str, i: int, out: str, value):
        """A node's output with its int8 range(s): per group for a Grouped value; a pinned (graph QDQ)
        value always gets the graph's range."""
        if is_const(value):
            return value
        wants = out in self.pinned or (lowering.quant == "compute" and not self._skip_tap(node, out))
        if isinstance(value, Grouped):
            if wants:  # at a graph QDQ point every group goes straight onto the graph's grid: one rounding,
                fixed = self.pinned.get(out)  # and a CONCATENATION that requantizes nothing
                value = Grouped(
                    [self.tap(p, f"{key}/out{i}/g{j}", fixed=fixed) for j, p in enumerate(value.parts)], value.index
                )
            self._names[id(value)] = out
            if out in self.pinned:  # a graph QDQ point: the whole tensor on the graph's one grid, as it rounds it
                joined, _ = self.joined(value)
                return Grouped(slices(joined, value.index), value.index, joined)
            return value
        return self.tap(value, f"{key}/out{i}", out) if wants else value

    def _lookup(self, env, name: str):
        while name in self.alias:
            name = self.alias[name]
        if name not in env:
            raise ModelError(f"the graph uses '{name}' before it is computed (not topologically sorted?)")
        return env[name]

    def function(self):
        tf = import_tf()
        specs = [
            tf.TensorSpec(self.shapes[name], tf.as_dtype(dtype), name=self.input_names[name])
            for name, dtype in self.view.inputs
        ]
        return tf.function(self.body, input_signature=specs, autograph=False)


def _fake_quant(tensor, low: float, high: float, key: str):
    """The int8 range of ``tensor`` for the converter, named after the tap (the .tflite tensor names
    then say which graph node and which intermediate they are)."""
    tf = import_tf()
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", key).lstrip("_./-") or "range"
    return tf.quantization.fake_quant_with_min_max_args(tensor, min=low, max=high, num_bits=8, name=name)


def _to_numpy(value):
    if value is None or is_const(value):
        return value
    return value.numpy()
