"""An edgesdk Graph (standard ONNX, float or QDQ) as a TF function: weights as constants, inputs named
as the ONNX inputs with the static shapes of a feed, outputs named as the ONNX outputs.

Three modes, one graph walk:

``fp32``     the graph's exact float semantics: QDQ pairs are simulated (round, clip), weights are the
             graph's dequantized values.
``dynamic``  activation QDQ pairs (static or DynamicQuantizeLinear) become identities: TFLite's hybrid
             kernels quantize activations at run time; weights are the graph's q·scale values, which the
             converter's per-channel max-abs quantization maps back to the graph's own int8 values.
``int8``     every float tensor TFLite computes gets a range, written as a FakeQuant op. The converter
             then runs in its quantization-aware mode (no representative dataset: TF calibrates nothing;
             a tensor without a range would stay float, which convert.py refuses):
             - at the graph's QuantizeLinear points, the graph's own range (-zp·s, (255-zp)·s): exact;
             - elsewhere, the range edgesdk's observers (quant.stats.TensorStats) saw on the calibration
               feeds, running this same TF function (the graph's QDQ points applied) before the ranges
               are known. Softmax inputs keep [min row max - 12, max]: masked scores saturate at the
               bottom, where exp() is < 1e-5 of the row maximum;
             - the residual stream and smoothed GELU outputs travel as channel groups (ops.Grouped),
               planned from a first observation (channel_plan).
             Attention-mask constants (float32 lowest, -inf) become MASK_VALUE, and scores + mask becomes
             a select (an int8 ADD of a huge constant overflows in LiteRT's optimized kernel).

Before tracing, ``fuse`` rewrites multi-node forms TFLite has one good op for (GELU written with Erf or
Tanh, LayerNorm and RMSNorm written as reductions), checked structurally and, for GELU, numerically.

Measured on all-MiniLM-L6-v2 (int8 recipe, 64 calibration sentences, mean cosine of the sentence
embedding to the fp32 model, 100 held-out sentences): one range per tensor 0.81; residual stream in 4
channel groups 0.985; smoothed GELU outputs grouped 0.9875 (ORT's int8 artifact, which keeps LayerNorm,
softmax, GELU and residuals in float: 0.998). What still limits it: every tensor in front of a
SmoothQuant scale is rounded before the scale multiplies its step by up to 8 (LayerNorm outputs are
scaled from their normalized values instead, GELU outputs grouped by factor); Σ(x-mean)² per token
spans ~200x between ordinary and outlier tokens on one int8 grid; softmax output has a fixed 1/256 step."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedOperatorError
from ...graph import Graph
from . import ops
from .ops import EDGESDK_DOMAIN, import_tf, is_const, is_float

MODES = ("fp32", "dynamic", "int8")
MASK_VALUE = -1.0e4  # stands for float32 lowest / -inf in attention masks of int8 models
SOFTMAX_FLOOR = 12.0  # softmax inputs: range starts this far below the smallest row maximum
_HUGE = 1.0e30


# ----------------------------------------------------------------------------------------- graph view


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


# --------------------------------------------------------------------------------------------- fusion


def fuse(view: GraphView) -> GraphView:
    """Rewrite GELU (Erf/Tanh forms), LayerNorm and RMSNorm subgraphs into one node each."""
    for matcher in (_match_layernorm, _match_rmsnorm, _match_gelu):
        while True:
            consumers, producers = view.consumers(), view.producers()
            for node in view.nodes:
                found = matcher(view, node, consumers, producers)
                if found:
                    _replace(view, *found)
                    break
            else:
                break
    return view


def _replace(view: GraphView, remove: list[Node], fused: Node) -> None:
    gone = {id(n) for n in remove}
    last = max(i for i, n in enumerate(view.nodes) if id(n) in gone)
    nodes = [n for n in view.nodes[: last + 1] if id(n) not in gone] + [fused] + view.nodes[last + 1 :]
    view.nodes = nodes


def _scalar(view: GraphView, name: str) -> float | None:
    value = view.value(name) if name else None
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.number):
        return None
    return float(value.reshape(()))


def _only(consumers, name: str, op_type: str | tuple, outputs: set[str]) -> Node | None:
    users = consumers.get(name, [])
    if name in outputs or len(users) != 1:
        return None
    node = users[0]
    return node if node.op_type in ((op_type,) if isinstance(op_type, str) else op_type) else None


def _other(node: Node, name: str) -> str:
    a, b = node.inputs[:2]
    return b if a == name else a


def _last_axis_reduce(view: GraphView, node: Node) -> bool:
    if node.op_type != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        value = view.value(node.inputs[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return axes is not None and list(axes) == [-1]


def _is_square(view: GraphView, node: Node) -> str | None:
    """The squared tensor of Pow(x, 2) or Mul(x, x)."""
    if node.op_type == "Pow" and _scalar(view, node.inputs[1]) == 2.0:
        return node.inputs[0]
    if node.op_type == "Mul" and node.inputs[0] == node.inputs[1]:
        return node.inputs[0]
    return None


def _norm_tail(view, consumers, outputs, normed: str, allow_bias: bool):
    """Optional Mul by a constant gain, then optional Add of a constant bias, after a normalization."""
    chain, gain, bias, end = [], "", "", normed
    mul = _only(consumers, end, "Mul", outputs)
    if mul is not None and view.value(_other(mul, end)) is not None:
        chain.append(mul)
        gain, end = _other(mul, end), mul.outputs[0]
        add = _only(consumers, end, "Add", outputs) if allow_bias else None
        if add is not None and view.value(_other(add, end)) is not None:
            chain.append(add)
            bias, end = _other(add, end), add.outputs[0]
    return chain, gain, bias, end


def _match_layernorm(view, node, consumers, producers):
    """ReduceMean → Sub → Pow 2 → ReduceMean → Add eps → Sqrt → Div (→ Mul γ → Add β)."""
    if not _last_axis_reduce(view, node):
        return None
    outputs = set(view.outputs)
    x = node.inputs[0]
    sub = _only(consumers, node.outputs[0], "Sub", outputs)
    if sub is None or sub.inputs != [x, node.outputs[0]]:
        return None
    d = sub.outputs[0]
    users = consumers.get(d, [])
    square = next((u for u in users if _is_square(view, u) == d), None)
    div = next((u for u in users if u.op_type == "Div" and u.inputs[0] == d), None)
    if square is None or div is None or len(users) != 2 or d in outputs:
        return None
    mean2 = _only(consumers, square.outputs[0], "ReduceMean", outputs)
    if mean2 is None or not _last_axis_reduce(view, mean2):
        return None
    add = _only(consumers, mean2.outputs[0], "Add", outputs)
    eps = _scalar(view, _other(add, mean2.outputs[0])) if add is not None else None
    sqrt = _only(consumers, add.outputs[0], "Sqrt", outputs) if eps is not None else None
    if sqrt is None or div.inputs[1] != sqrt.outputs[0] or len(consumers.get(sqrt.outputs[0], [])) != 1:
        return None
    tail, gain, bias, end = _norm_tail(view, consumers, outputs, div.outputs[0], allow_bias=True)
    chain = [node, sub, square, mean2, add, sqrt, div] + tail
    fused = Node("LayerNormalization", "", f"{node.name}_layernorm", [x, gain, bias], [end], {"epsilon": eps, "axis": -1})
    return chain, fused


def _match_rmsnorm(view, node, consumers, producers):
    """Pow 2 → ReduceMean → Add eps → Sqrt → Reciprocal → Mul x (→ Mul γ), or … Sqrt → Div(x, ·)."""
    x = _is_square(view, node)
    if x is None:
        return None
    outputs = set(view.outputs)
    mean = _only(consumers, node.outputs[0], "ReduceMean", outputs)
    if mean is None or not _last_axis_reduce(view, mean):
        return None
    add = _only(consumers, mean.outputs[0], "Add", outputs)
    eps = _scalar(view, _other(add, mean.outputs[0])) if add is not None else None
    sqrt = _only(consumers, add.outputs[0], "Sqrt", outputs) if eps is not None else None
    if sqrt is None:
        return None
    chain = [node, mean, add, sqrt]
    after = _only(consumers, sqrt.outputs[0], ("Reciprocal", "Div"), outputs)
    if after is None:
        return None
    if after.op_type == "Div" and after.inputs[1] == sqrt.outputs[0] and after.inputs[0] == x:
        normed = after.outputs[0]
        chain.append(after)
    else:
        if after.op_type == "Div" and _scalar(view, after.inputs[0]) != 1.0:
            return None
        mul = _only(consumers, after.outputs[0], "Mul", outputs)
        if mul is None or _other(mul, after.outputs[0]) != x:
            return None
        chain += [after, mul]
        normed = mul.outputs[0]
    tail, gain, _, end = _norm_tail(view, consumers, outputs, normed, allow_bias=False)
    fused = Node("RMSNorm", EDGESDK_DOMAIN, f"{node.name}_rmsnorm", [x, gain], [end], {"epsilon": eps, "axis": -1})
    return chain + tail, fused


_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Erf", "Tanh", "Sqrt"}


def _match_gelu(view, node, consumers, producers):
    """The elementwise region around an Erf/Tanh that computes gelu(x) for one tensor x, verified by
    evaluating it on sample values (exporters write the same GELU in several orders)."""
    if node.op_type not in ("Erf", "Tanh"):
        return None
    outputs = set(view.outputs)
    candidates, frontier = [], [node.inputs[0]]
    for _ in range(5):  # the dynamic tensors up to five elementwise steps before the seed
        nxt = []
        for name in frontier:
            if name in candidates or view.value(name) is not None:
                continue
            candidates.append(name)
            p = producers.get(name)
            if p is not None and p.op_type in _ELEMENTWISE:
                nxt += [i for i in p.inputs if i]
        frontier = nxt
    for x in reversed(candidates):
        region = _grow_region(view, consumers, x)
        if node not in region:
            continue
        escaping = [o for n in region for o in n.outputs if o in outputs or any(c not in region for c in consumers.get(o, []))]
        if len(escaping) != 1:
            continue
        approximate = _evaluates_to_gelu(view, region, x, escaping[0])
        if approximate is not None:
            fused = Node("Gelu", EDGESDK_DOMAIN, f"{node.name}_gelu", [x], [escaping[0]], {"approximate": approximate})
            return region, fused
    return None


def _grow_region(view: GraphView, consumers, x: str, limit: int = 12) -> list[Node]:
    """The elementwise nodes computable from ``x`` and scalar constants alone, in graph order."""
    region: list[Node] = []
    values = {x}
    changed = True
    while changed and len(region) < limit:
        changed = False
        for name in sorted(values):  # a copy: values grows in the loop
            for c in consumers.get(name, []):
                if c in region or c.op_type not in _ELEMENTWISE:
                    continue
                if all(i in values or _scalar(view, i) is not None for i in c.inputs if i):
                    region.append(c)
                    values.update(c.outputs)
                    changed = True
    order = {id(n): i for i, n in enumerate(view.nodes)}
    region.sort(key=lambda n: order[id(n)])
    return region


def _evaluates_to_gelu(view: GraphView, region: list[Node], x: str, y: str) -> str | None:
    erf = np.vectorize(math.erf)
    fns = {
        "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
        "Erf": erf, "Tanh": np.tanh, "Sqrt": np.sqrt,
    }
    sample = np.linspace(-6.0, 6.0, 121)
    env = {x: sample}
    with np.errstate(all="ignore"):
        for n in region:
            args = [env[i] if i in env else view.value(i).astype(np.float64) for i in n.inputs if i]
            if any(np.ndim(a) and np.size(a) != sample.size for a in args):
                return None  # GELU's constants are scalars
            env[n.outputs[0]] = fns[n.op_type](*args)
    got = env.get(y)
    if got is None or got.shape != sample.shape:
        return None
    exact = 0.5 * sample * (1.0 + erf(sample / math.sqrt(2.0)))
    tanh = 0.5 * sample * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (sample + 0.044715 * sample**3)))
    if np.allclose(got, exact, atol=1e-5):
        return "none"
    if np.allclose(got, tanh, atol=1e-5):
        return "tanh"
    return None


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

    def int_range(self, tensor, tag: str):
        return self.tracer.int_range(tensor, f"{self.key}/{tag}")

    def constant(self, array: np.ndarray) -> np.ndarray:
        return self.tracer.constant(array)

    def merged(self, value):
        """A Grouped value as one tensor (anything else as it is)."""
        return self.tracer.merge(value) if isinstance(value, ops.Grouped) else value

    def merged_shape(self, value) -> list[int] | None:
        """The shape of a float tensor (grouped or not), None for constants and non-float values."""
        if isinstance(value, ops.Grouped):
            return ops.shape_of(value.parts[0])[:-1] + [value.channels]
        return None if is_const(value) or not is_float(value) else ops.shape_of(value)

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


@dataclasses.dataclass
class ChannelPlan:
    """How int8 lowering carries channel groups (see ops.Grouped), decided from a first observation: the
    residual stream's groups (channels by magnitude) and every value carried as groups, with its groups."""

    groups: list[np.ndarray] | None = None  # the residual stream's channel groups
    grouped_values: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)  # value -> its groups


@dataclasses.dataclass
class Lowered:
    """A traced graph: the tf.function (inside ``module`` for the converter) and the name maps."""

    function: Any
    module: Any
    concrete: Any
    inputs: dict[str, str]  # ONNX input name -> signature input name
    outputs: dict[str, str]  # ONNX output name -> signature output name
    input_dtypes: dict[str, np.dtype]  # ONNX input name -> dtype of the signature input
    ranges: dict[str, tuple[float, float]]  # the int8 range of every tap (int8 mode)
    plan: ChannelPlan | None = None

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the TF function itself on a feed (a check of the lowering before any conversion)."""
        out = self.function(*[np.asarray(feed[name]).astype(dtype) for name, dtype in self.input_dtypes.items()])
        return {onnx: out[sig].numpy() for onnx, sig in self.outputs.items()}


NORMS = {"LayerNormalization", "RMSNorm", "SimplifiedLayerNormalization"}


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
        other = _other(users[0], out)
        if len(node.inputs) > 1 and node.inputs[1] in self.static and other in self.static:
            return True
        mask = self.producers.get(other)
        return mask is not None and mask.op_type == "Where" and all(i in self.static for i in mask.inputs[1:])

    def merge(self, value):
        """A Grouped value as one tensor: concatenated, back in channel order, with its own range."""
        if id(value) not in self._merged:
            name = self._names.get(id(value), f"grouped{len(self._merged)}")
            merged = ops.merge(value, lambda t: self.tap(t, f"merge:{name}", name if name in self.pinned else None))
            self._merged[id(value)] = merged
        return self._merged[id(value)]

    # -- the walk --------------------------------------------------------------------------------------

    def body(self, *args):
        tf = import_tf()
        view = self.view
        self.masks, self.norms, self._merged, self._names = {}, {}, {}, {}
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
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"cannot lower node '{node.name}' ({node.op_type}): {text}") from None
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
        if isinstance(value, ops.Grouped):
            if wants:
                value = ops.Grouped(
                    [self.tap(p, f"{key}/out{i}/g{j}") for j, p in enumerate(value.parts)], value.index
                )
            self._names[id(value)] = out
            return self.merge(value) if out in self.pinned else value
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


# ------------------------------------------------------------------------------------------ observers


def _input_shapes(view: GraphView, feed: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    missing = [name for name, _ in view.inputs if name not in feed]
    if missing:
        raise ModelError(f"the feed lacks the model input(s) {', '.join(missing)}")
    return {name: tuple(int(d) for d in np.shape(feed[name])) for name, _ in view.inputs}


def _args(view: GraphView, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(feed[name]).astype(dtype) for name, dtype in view.inputs]


def observe(tracer: Tracer, feeds: list[dict[str, np.ndarray]]):
    """Run the observing trace on the feeds: (TensorStats per tap, smallest row maximum per softmax
    input tap, integer range per integer tap)."""
    from ...quant.stats import TensorStats

    function = tracer.function()
    stats: dict[str, TensorStats] = defaultdict(TensorStats)
    row_max: dict[str, float] = {}
    ints: dict[str, tuple[int, int]] = {}
    for feed in feeds:
        _, taps, int_taps = function(*_args(tracer.view, feed))
        for key, tensor in taps.items():
            x = tensor.numpy()
            stats[key].observe(x)
            if tracer.tap_tensor.get(key) in tracer.softmax_inputs:
                m = float(x.max(axis=-1).min())
                row_max[key] = min(row_max.get(key, m), m)
        for key, tensor in int_taps.items():
            x = tensor.numpy()
            low, high = ints.get(key, (int(x.min()), int(x.max())))
            ints[key] = (min(low, int(x.min())), max(high, int(x.max())))
    return stats, row_max, ints


# Channel groups: a channel's tier is how many of these its calibration max exceeds, in multiples of
# the median channel's (measured on all-MiniLM-L6-v2: 2 groups lift the simulated mean cosine from 0.81
# to 0.986, 4 to 0.994, 10 to 0.995).
GROUP_THRESHOLDS = (2.5, 6.0, 20.0)

def channel_plan(tracer: Tracer, stats) -> ChannelPlan:
    """From a first (plain) observation: the residual stream's channel groups (from the per-channel maxima
    of every normalization's input), the values that carry them, and the smoothed GELU outputs' groups."""
    view = tracer.view
    key_of = {name: key for key, name in tracer.tap_tensor.items()}
    ratios: dict[int, list[np.ndarray]] = defaultdict(list)
    norms = [n for n in view.nodes if n.op_type in NORMS and len(n.outputs) == 1]
    for node in norms:
        observed = stats.get(key_of.get(node.inputs[0], ""))
        if observed is not None and observed.channel_absmax is not None:
            absmax = observed.channel_absmax
            ratios[len(absmax)].append(absmax / max(float(np.median(absmax)), 1e-12))
    grouped: dict[str, list[np.ndarray]] = {}
    groups = None
    if ratios:
        channels = max(ratios, key=lambda c: len(ratios[c]))
        worst = np.max(ratios[channels], axis=0)
        tier = sum((worst > t).astype(int) for t in GROUP_THRESHOLDS)
        groups = [np.flatnonzero(tier == t) for t in range(len(GROUP_THRESHOLDS) + 1) if (tier == t).any()]
    if groups is not None and len(groups) > 1:
        stack = []
        for node in norms:
            for name in (node.inputs[0], node.outputs[0]):
                if name not in tracer.pinned and name not in tracer.static:
                    grouped[name] = groups
                    stack.append(name)
        while stack:  # back through the residual adds
            producer = tracer.producers.get(stack.pop())
            if producer is None or producer.op_type != "Add":
                continue
            for name in producer.inputs:
                if name and name not in grouped and name not in tracer.static and name not in tracer.pinned:
                    grouped[name] = groups
                    stack.append(name)
    grouped.update(_smoothing_groups(tracer))
    return ChannelPlan(groups if grouped else None, grouped)


SMOOTH_TIER = 3.0  # channels of a smoothed GELU output are grouped by their factor, in steps of this ratio


def _smoothing_groups(tracer: Tracer) -> dict[str, list[np.ndarray]]:
    """Linear -> (bias) -> GELU -> per-channel scale (SmoothQuant's Mul before a QDQ point): the GELU output
    is quantized before the scale multiplies it by up to ~8, so its int8 step would grow with it. Carried
    as groups of channels with similar factors, each group's range fits what the scale makes of it."""
    view, found = tracer.view, {}
    for node in view.nodes:
        if node.op_type != "Mul" or node.outputs[0] not in tracer.pinned:
            continue
        factors = [view.value(i) for i in node.inputs]
        for vec, x in ((factors[1], node.inputs[0]), (factors[0], node.inputs[1])):
            if vec is None or vec.ndim == 0 or vec.size < 2 or np.any(vec <= 0):
                continue
            chain, value = [], x
            while True:
                producer = tracer.producers.get(value)
                if producer is None or len(tracer.consumers.get(value, [])) != 1:
                    break
                chain.append(value)
                if producer.op_type == "Gelu" or (producer.op_type == "Add" and len(chain) > 1):
                    value = next(i for i in producer.inputs if i not in tracer.static)
                    continue
                break
            producer = tracer.producers.get(chain[-1]) if chain else None
            if not chain or producer is None or producer.op_type != "MatMul" or producer.inputs[1] not in tracer.static:
                continue
            if not any(tracer.producers[v].op_type == "Gelu" for v in chain):
                continue
            tier = np.floor(np.log(vec.reshape(-1) / vec.min()) / np.log(SMOOTH_TIER)).astype(int)
            groups = [np.flatnonzero(tier == t) for t in range(tier.max() + 1) if (tier == t).any()]
            if len(groups) > 1:
                found.update({v: groups for v in chain})
    return found


def ranges_from(tracer: Tracer, stats, row_max) -> dict[str, tuple[float, float]]:
    return {key: _range(s, row_max.get(key)) for key, s in stats.items()}


def _range(stats, row_max: float | None) -> tuple[float, float]:
    low, high = stats.min, stats.max
    if row_max is not None and low < row_max - SOFTMAX_FLOOR:
        low = row_max - SOFTMAX_FLOOR  # below it only masked or negligible scores: saturate them there
    low, high = min(low, 0.0), max(high, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ModelError(f"a tensor's calibration range [{low}, {high}] is not finite; it cannot be int8")
    if high - low < 1e-6:
        high = low + 1e-6
    return float(low), float(high)


# ----------------------------------------------------------------------------------------------- API


def lower(graph: Graph, feeds: list[dict[str, np.ndarray]], mode: str = "fp32") -> Lowered:
    """The graph as a TF function for ``mode`` (see the module docstring); feeds[0] fixes the shapes,
    and in int8 mode all feeds are the calibration data for the ranges the graph does not give."""
    if not feeds:
        raise ModelError("lowering needs at least one feed (it fixes the static input shapes)")
    tf = import_tf()
    view = read_graph(graph)
    check_supported(view)
    fuse(view)
    shapes = _input_shapes(view, feeds[0])
    ranges = int_ranges = plan = None
    if mode == "int8":
        first = Tracer(view, shapes, mode)
        plan = channel_plan(first, observe(first, feeds)[0])
        second = Tracer(view, shapes, mode, plan=plan)
        stats, row_max, int_ranges = observe(second, feeds)
        ranges = ranges_from(second, stats, row_max)
    tracer = Tracer(view, shapes, mode, ranges=ranges, int_ranges=int_ranges, plan=plan)
    function = tracer.function()
    concrete = function.get_concrete_function()
    module = tf.Module()
    module.function = function
    return Lowered(
        function, module, concrete, tracer.input_names, tracer.output_names, dict(view.inputs), ranges or {}, plan
    )
