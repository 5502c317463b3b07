"""One lowering per ONNX op type: (Context, node) -> the MIL values of the node's outputs.

The graph reaching here has static shapes (every value's shape is known), so shape-changing ops take their
output shape from the graph rather than re-deriving ONNX's rules (Reshape's 0 and -1, Unsqueeze's axes,
Expand's broadcast). A constant stays a numpy array until an op needs it as a MIL value."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...errors import ModelError
from .lowering import ONNX_TO_MIL_DTYPE, Context, as_mil_constant, mil_name
from .weights import constexpr, graph_weight

Lowering = Callable[[Context, object], list]
_LOWERINGS: dict[str, Lowering] = {}


def register(*op_types: str):
    def wrap(fn: Lowering) -> Lowering:
        for op_type in op_types:
            _LOWERINGS[op_type] = fn
        return fn

    return wrap


def lookup(op_type: str, domain: str = "") -> Lowering | None:
    return _LOWERINGS.get(op_type) if domain in ("", "ai.onnx") else None


def supported() -> list[str]:
    return sorted(_LOWERINGS)


def attr(node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _in(ctx: Context, node, index: int):
    value = node.inputs[index] if index < len(node.inputs) else None
    return None if value is None else ctx.get(value.name)


def _const_in(ctx: Context, node, index: int) -> np.ndarray | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    return None if value is None else ctx.const(value.name)


def _name(node, index: int = 0) -> str:
    return mil_name(node.outputs[index].name)


def _out_shape(ctx: Context, node, index: int = 0) -> tuple[int, ...]:
    return ctx.shapes[node.outputs[index].name]


def _floating(ctx: Context, x):
    """A float MIL operand: numpy constants as fp32."""
    return x.astype(np.float32) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x


# ------------------------------------------------------------------------------------------ elementwise

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Pow": "pow", "Max": "maximum", "Min": "minimum",
           "Equal": "equal", "Less": "less", "Greater": "greater", "GreaterOrEqual": "greater_equal",
           "LessOrEqual": "less_equal", "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}


@register(*_BINARY)
def binary(ctx: Context, node):
    x, y = _in(ctx, node, 0), _in(ctx, node, 1)
    if node.op_type in ("Max", "Min") and len(node.inputs) != 2:
        raise ModelError(f"node '{node.name}': {node.op_type} of {len(node.inputs)} inputs (the lowering takes 2)")
    if node.op_type == "Pow" and isinstance(y, np.ndarray) and y.size == 1 and float(y) == 2.0:
        return [ctx.mb.mul(x=x, y=x, name=_name(node))]  # x² exactly (pow goes through exp/log on some units)
    return [getattr(ctx.mb, _BINARY[node.op_type])(x=x, y=y, name=_name(node))]


@register("Div")
def div(ctx: Context, node):
    x, y = _in(ctx, node, 0), _in(ctx, node, 1)
    if ctx.is_integer(node.outputs[0].name):  # ONNX integer division truncates; the graph's are non-negative
        return [ctx.mb.floor_div(x=x, y=y, name=_name(node))]
    return [ctx.mb.real_div(x=x, y=y, name=_name(node))]


_UNARY = {"Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid",
          "Abs": "abs", "Reciprocal": "inverse", "Floor": "floor", "Ceil": "ceil", "Relu": "relu",
          "Not": "logical_not", "Sin": "sin", "Cos": "cos", "Round": "round"}


@register(*_UNARY)
def unary(ctx: Context, node):
    return [getattr(ctx.mb, _UNARY[node.op_type])(x=_in(ctx, node, 0), name=_name(node))]


@register("Neg")
def neg(ctx: Context, node):
    x = _in(ctx, node, 0)
    minus_one = np.array(-1, np.int32 if ctx.is_integer(node.inputs[0].name) else np.float32)
    return [ctx.mb.mul(x=x, y=minus_one, name=_name(node))]


@register("IsNaN")
def is_nan(ctx: Context, node):
    x = _in(ctx, node, 0)
    return [ctx.mb.not_equal(x=x, y=x, name=_name(node))]  # NaN is the one value unequal to itself


@register("Identity")
def identity(ctx: Context, node):
    return [_in(ctx, node, 0)]


@register("Cast")
def cast(ctx: Context, node):
    x = _in(ctx, node, 0)
    to = ONNX_TO_MIL_DTYPE.get(node.outputs[0].dtype.name)
    if to is None:
        raise ModelError(f"node '{node.name}': Cast to {node.outputs[0].dtype.name}, which Core ML lacks")
    if isinstance(x, np.ndarray):
        return [as_mil_constant(x.astype({"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": bool}[to]))]
    return [ctx.mb.cast(x=x, dtype=to, name=_name(node))]


@register("Where")
def where(ctx: Context, node):
    return [ctx.mb.select(cond=_in(ctx, node, 0), a=_in(ctx, node, 1), b=_in(ctx, node, 2), name=_name(node))]


@register("Clip")
def clip(ctx: Context, node):
    x, low, high = _in(ctx, node, 0), _const_in(ctx, node, 1), _const_in(ctx, node, 2)
    if ctx.is_integer(node.inputs[0].name):
        if low is not None:
            x = ctx.mb.maximum(x=x, y=low)
        return [ctx.mb.minimum(x=x, y=high, name=_name(node)) if high is not None else x]
    if low is None or high is None:  # one bound: no infinite one to cast to float16
        return [ctx.mb.maximum(x=x, y=np.float32(low), name=_name(node)) if high is None
                else ctx.mb.minimum(x=x, y=np.float32(high), name=_name(node))]
    return [ctx.mb.clip(x=x, alpha=np.float32(low), beta=np.float32(high), name=_name(node))]


# ------------------------------------------------------------------------------------------ linear algebra


@register("MatMul")
def matmul(ctx: Context, node):
    return [ctx.mb.matmul(x=_floating(ctx, _in(ctx, node, 0)), y=_floating(ctx, _in(ctx, node, 1)), name=_name(node))]


@register("Gemm")
def gemm(ctx: Context, node):
    a, b, c = _in(ctx, node, 0), _in(ctx, node, 1), _in(ctx, node, 2)
    if attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0:
        raise ModelError(f"node '{node.name}': Gemm with alpha or beta other than 1")
    product = ctx.mb.matmul(x=a, y=b, transpose_x=bool(attr(node, "transA", 0)), transpose_y=bool(attr(node, "transB", 0)),
                            name=_name(node) if c is None else None)
    return [product if c is None else ctx.mb.add(x=product, y=c, name=_name(node))]


@register("Softmax")
def softmax(ctx: Context, node):
    return [ctx.mb.softmax(x=_in(ctx, node, 0), axis=int(attr(node, "axis", -1)), name=_name(node))]


@register("LayerNormalization")
def layer_norm(ctx: Context, node):
    x = _in(ctx, node, 0)
    rank = len(ctx.shapes[node.inputs[0].name])
    axis = int(attr(node, "axis", -1)) % rank
    if len([o for o in node.outputs if o.name and o.uses()]) > 1:
        raise ModelError(f"node '{node.name}': LayerNormalization's mean or inverse deviation outputs are used")
    gamma, beta = _const_in(ctx, node, 1), _const_in(ctx, node, 2)
    return [ctx.mb.layer_norm(x=x, axes=list(range(axis, rank)), gamma=gamma, beta=beta,
                              epsilon=np.float32(attr(node, "epsilon", 1e-5)), name=_name(node))]


@register("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")
def reduce(ctx: Context, node):
    x = _in(ctx, node, 0)
    axes = _const_in(ctx, node, 1) if len(node.inputs) > 1 else None
    if axes is None:
        axes = attr(node, "axes")
    kind = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max", "ReduceMin": "reduce_min"}
    kwargs = {} if axes is None else {"axes": [int(a) for a in np.asarray(axes).reshape(-1)]}
    if axes is not None and not kwargs["axes"] and attr(node, "noop_with_empty_axes", 0):
        return [x]
    return [getattr(ctx.mb, kind[node.op_type])(x=x, keep_dims=bool(attr(node, "keepdims", 1)), name=_name(node), **kwargs)]


# ------------------------------------------------------------------------------------------ shapes


@register("Reshape", "Unsqueeze", "Squeeze", "Flatten")
def reshape(ctx: Context, node):
    x = _in(ctx, node, 0)
    shape = _out_shape(ctx, node)
    if isinstance(x, np.ndarray):
        return [x.reshape(shape)]
    return [ctx.mb.reshape(x=x, shape=np.array(shape, np.int32), name=_name(node))]


@register("Transpose")
def transpose(ctx: Context, node):
    x = _in(ctx, node, 0)
    perm = attr(node, "perm") or list(reversed(range(len(ctx.shapes[node.inputs[0].name]))))
    if isinstance(x, np.ndarray):
        return [np.transpose(x, perm)]
    return [ctx.mb.transpose(x=x, perm=[int(p) for p in perm], name=_name(node))]


@register("Expand")
def expand(ctx: Context, node):
    x = _in(ctx, node, 0)
    out = _out_shape(ctx, node)
    if isinstance(x, np.ndarray):
        return [np.broadcast_to(x, out).copy()]
    shape = ctx.shapes[node.inputs[0].name]
    if len(shape) < len(out):
        x = ctx.mb.reshape(x=x, shape=np.array((1,) * (len(out) - len(shape)) + tuple(shape), np.int32))
        shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    reps = [o // s if s != o else 1 for s, o in zip(shape, out)]
    return [ctx.mb.tile(x=x, reps=reps, name=_name(node)) if any(r != 1 for r in reps) else x]


@register("Concat")
def concat(ctx: Context, node):
    values = [_in(ctx, node, i) for i in range(len(node.inputs))]
    axis = int(attr(node, "axis"))
    if all(isinstance(v, np.ndarray) for v in values):
        return [np.concatenate(values, axis=axis)]
    values = [_floating(ctx, v) for v in values]
    return [ctx.mb.concat(values=values, axis=axis, name=_name(node))]


@register("Slice")
def slice_(ctx: Context, node):
    x = _in(ctx, node, 0)
    shape = ctx.shapes[node.inputs[0].name]
    starts, ends = _const_in(ctx, node, 1), _const_in(ctx, node, 2)
    axes = _const_in(ctx, node, 3) if len(node.inputs) > 3 and node.inputs[3] is not None else np.arange(len(starts))
    steps = _const_in(ctx, node, 4) if len(node.inputs) > 4 and node.inputs[4] is not None else np.ones(len(starts), np.int64)
    if starts is None or ends is None or axes is None or steps is None:
        raise ModelError(f"node '{node.name}': Slice with computed bounds (the Core ML lowering needs constants)")
    begin, end, stride = [0] * len(shape), list(shape), [1] * len(shape)
    for start, stop, axis, step in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
        axis %= len(shape)
        begin[axis], end[axis], stride[axis] = slice(start, stop, step).indices(shape[axis])
        if step < 0 and end[axis] < 0:
            raise ModelError(f"node '{node.name}': a reversed Slice to the start (the Core ML lowering lacks it)")
    if isinstance(x, np.ndarray):
        return [x[tuple(slice(b, e, s) for b, e, s in zip(begin, end, stride))]]
    return [ctx.mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, name=_name(node))]


@register("Split")
def split(ctx: Context, node):
    x = _in(ctx, node, 0)
    axis = int(attr(node, "axis", 0))
    sizes = [ctx.shapes[o.name][axis] for o in node.outputs]
    names = [mil_name(o.name) for o in node.outputs]
    parts = ctx.mb.split(x=x, split_sizes=sizes, axis=axis, name=names[0] + "_split")
    return [ctx.mb.identity(x=part, name=name) for part, name in zip(parts, names)]


@register("Gather")
def gather(ctx: Context, node):
    x, indices = _in(ctx, node, 0), _in(ctx, node, 1)
    axis = int(attr(node, "axis", 0))
    if isinstance(indices, np.ndarray):
        indices = np.where(indices < 0, indices + ctx.shapes.get(node.inputs[0].name, x.shape if isinstance(x, np.ndarray) else ())[axis], indices)
        if isinstance(x, np.ndarray):
            return [np.take(x, indices, axis=axis)]
        indices = indices.astype(np.int32)
    return [ctx.mb.gather(x=_floating(ctx, x), indices=indices, axis=axis, name=_name(node))]


@register("GatherND")
def gather_nd(ctx: Context, node):
    x, indices = _in(ctx, node, 0), _in(ctx, node, 1)
    kwargs = {"batch_dims": int(attr(node, "batch_dims", 0))} if attr(node, "batch_dims", 0) else {}
    if isinstance(indices, np.ndarray):
        indices = indices.astype(np.int32)
    if ctx.dtypes.get(node.inputs[0].name) == "BOOL":  # MIL gathers numbers: a mask goes through int32
        picked = ctx.mb.gather_nd(x=ctx.mb.cast(x=x, dtype="int32"), indices=indices, **kwargs)
        return [ctx.mb.cast(x=picked, dtype="bool", name=_name(node))]
    return [ctx.mb.gather_nd(x=x, indices=indices, name=_name(node), **kwargs)]


@register("ScatterND")
def scatter_nd(ctx: Context, node):
    """A causal LM's static cache: the call's keys or values written into their slots."""
    data, indices, updates = _in(ctx, node, 0), _in(ctx, node, 1), _in(ctx, node, 2)
    modes = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}
    reduction = attr(node, "reduction", "none")
    if reduction not in modes:
        raise ModelError(f"node '{node.name}': ScatterND with reduction '{reduction}'")
    if isinstance(indices, np.ndarray):
        indices = indices.astype(np.int32)
    elif not ctx.dtypes.get(node.inputs[1].name, "INT64") == "INT32":
        indices = ctx.mb.cast(x=indices, dtype="int32")
    return [ctx.mb.scatter_nd(data=_floating(ctx, data), indices=indices, updates=_floating(ctx, updates),
                              mode=modes[reduction], name=_name(node))]


@register("Trilu")
def trilu(ctx: Context, node):
    x, k = _in(ctx, node, 0), _const_in(ctx, node, 1)
    k = 0 if k is None else int(k)
    rows, cols = ctx.shapes[node.inputs[0].name][-2:]
    keep = np.tril(np.ones((rows, cols), bool), k) if not attr(node, "upper", 1) else np.triu(np.ones((rows, cols), bool), k)
    if isinstance(x, np.ndarray):
        return [np.where(keep, x, np.zeros_like(x))]
    zero = np.zeros((), np.float32 if not ctx.is_integer(node.inputs[0].name) else np.int32)
    return [ctx.mb.select(cond=keep, a=x, b=zero, name=_name(node))]


# ------------------------------------------------------------------------------------------ quantization


@register("DequantizeLinear")
def dequantize(ctx: Context, node):
    source = node.inputs[0].name
    if source in ctx.passthrough:  # int8-dynamic: Core ML has no per-call activation scales; the float input
        return [ctx.get(ctx.passthrough[source])]
    codes, scale, zero = _const_in(ctx, node, 0), _const_in(ctx, node, 1), _const_in(ctx, node, 2)
    if scale is None:
        raise ModelError(f"node '{node.name}': DequantizeLinear with a computed scale")
    if codes is not None:  # a weight: the graph's codes kept as they are
        codes = _graph_codes(node, 0)
        weight = graph_weight(node, codes, scale, None if zero is None else _graph_codes(node, 2))
        return [constexpr(ctx.mb, weight, ctx.deployment_target, _name(node))]
    if ctx.deployment_target == "iOS16":
        raise ModelError(f"node '{node.name}': int8 activations need the iOS17 deployment target")
    axis = attr(node, "axis", 1) if scale.size > 1 else None
    kwargs = {"zero_point": zero.reshape(-1) if scale.size > 1 else zero.reshape(())} if zero is not None else {}
    return [ctx.mb.dequantize(input=_in(ctx, node, 0), scale=scale.astype(np.float32).reshape(-1) if scale.size > 1 else scale.astype(np.float32).reshape(()),
                              name=_name(node), **({"axis": int(axis)} if axis is not None else {}), **kwargs)]


@register("QuantizeLinear")
def quantize(ctx: Context, node):
    scale, zero = _const_in(ctx, node, 1), _const_in(ctx, node, 2)
    if scale is None:
        raise ModelError(f"node '{node.name}': QuantizeLinear with a computed scale")
    if ctx.deployment_target == "iOS16":
        raise ModelError(f"node '{node.name}': int8 activations need the iOS17 deployment target")
    dtype = node.outputs[0].dtype.name
    if dtype not in ("INT8", "UINT8"):
        raise ModelError(f"node '{node.name}': QuantizeLinear to {dtype} (Core ML quantizes to int8 or uint8)")
    per_channel = scale.size > 1
    kwargs = {"zero_point": (zero.reshape(-1) if per_channel else zero.reshape(()))} if zero is not None else {}
    if per_channel:
        kwargs["axis"] = int(attr(node, "axis", 1))
    return [ctx.mb.quantize(input=_in(ctx, node, 0), scale=scale.astype(np.float32).reshape(-1) if per_channel else scale.astype(np.float32).reshape(()),
                            output_dtype=dtype.lower(), name=_name(node), **kwargs)]


@register("DynamicQuantizeLinear")
def dynamic_quantize(ctx: Context, node):
    """int8-dynamic's per-call activation quantization: Core ML has none, so its DequantizeLinear reads the
    float input again (the recipe's int8 weights stay)."""
    for output in node.outputs:
        ctx.passthrough[output.name] = node.inputs[0].name
    return [None, None, None]


def _graph_codes(node, index: int) -> np.ndarray:
    """An input constant as the graph holds it (int4/uint4 kept as such, not widened to int32 for MIL)."""
    return node.inputs[index].const_value.numpy()
