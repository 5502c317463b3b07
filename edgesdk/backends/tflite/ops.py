"""Per-op lowerings: one small function per ONNX op type, producing TF ops from TF tensors.

A lowering is ``fn(ctx, inputs, attrs) -> value | tuple of values``. ``inputs`` holds one entry per
ONNX input: a ``tf.Tensor`` (known only at run time), a numpy array (a constant: initializers and
everything computed from constants and static shapes), or None for an omitted optional input.
Lowerings that need a value at conversion time (a Reshape's shape, a Slice's starts) read it with
``static(ctx, value)``: shapes are static, so shape arithmetic is folded to constants while tracing.

``ctx`` is the tracing context (lowering.Context). ``ctx.int8`` is set when the model is built for
full-integer TFLite: the lowering then picks forms TFLite runs well in int8 (a per-channel scale as a
1x1 depthwise convolution, an additive attention mask as a select, Σx² as an int32-accumulated
BATCH_MATMUL). ``ctx.q(tensor, tag)`` gives an intermediate tensor its own int8 range. Lowerings
registered with ``grouped=True`` also take and return ``Grouped`` values (channel groups, groups.py).

Each op is registered with how its outputs are quantized in full-integer TFLite:
``compute``: the output gets its own range (observed on calibration data or pinned by the graph);
``same``: data movement, the output keeps its input's range (RESHAPE, TRANSPOSE, GATHER...);
``fixed``: TFLite fixes the output range (SOFTMAX 1/256, LOGISTIC 1/256, TANH 1/128);
``none``: no float output (shapes, comparisons, integer and boolean ops)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ModelError
from .groups import Grouped, split
from .tensors import is_const, is_float, rank_of, shape_of, static, tf

QUANT_KINDS = ("compute", "same", "fixed", "none")
EDGESDK_DOMAIN = "edgesdk.tflite"  # ops made by fusions.fuse() from multi-node patterns


@dataclasses.dataclass(frozen=True)
class Lowering:
    fn: Callable[..., Any]
    quant: str  # one of QUANT_KINDS
    grouped: bool = False  # takes and returns Grouped values (int8 channel groups, see Grouped)


LOWERINGS: dict[tuple[str, str], Lowering] = {}


def register(*op_types: str, quant: str = "compute", domain: str = "", grouped: bool = False):
    assert quant in QUANT_KINDS

    def wrap(fn):
        for op in op_types:
            LOWERINGS[(domain, op)] = Lowering(fn, quant, grouped)
        return fn

    return wrap


def lookup(op_type: str, domain: str = "") -> Lowering | None:
    return LOWERINGS.get(("" if domain == "ai.onnx" else domain, op_type))


# ---------------------------------------------------------------------------------------------- helpers


def _axes(ctx, inputs: list, attrs: dict, index: int = 1) -> list[int] | None:
    """Reduction/unsqueeze axes: an attribute before the opset that moved them to an input."""
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(inputs) > index and inputs[index] is not None:
        return [int(a) for a in static(ctx, inputs[index], "axes").reshape(-1)]
    return None


ONNX_DTYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
    10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64, 4: np.uint16,
}


def np_dtype(onnx_type: int) -> np.dtype:
    if onnx_type not in ONNX_DTYPES:
        raise ModelError(f"ONNX element type {onnx_type} has no TFLite equivalent")
    return np.dtype(ONNX_DTYPES[onnx_type])


def channel_affine(ctx, x, scale: np.ndarray | None, bias: np.ndarray | None):
    """x * scale + bias with per-channel constants along the last axis.

    In int8 a per-channel vector quantized per tensor loses its small entries (SmoothQuant factors,
    LayerNorm gains span decades), so it becomes a 1x1 depthwise convolution: TFLite quantizes its
    filter per channel (scale_c = |v_c|/127, every value exact) and its bias in int32."""
    if not ctx.int8:
        if scale is not None:
            x = x * scale
        return x + bias if bias is not None else x
    shape = shape_of(x)
    channels = shape[-1]
    scale = np.ones(channels, np.float32) if scale is None else np.broadcast_to(scale, (channels,)).astype(np.float32)
    flat = tf.reshape(x, [1, 1, -1, channels])
    y = tf.nn.depthwise_conv2d(flat, scale.reshape(1, 1, channels, 1), [1, 1, 1, 1], "VALID")
    if bias is not None:
        y = y + np.broadcast_to(bias, (channels,)).astype(np.float32)
    return tf.reshape(y, shape)


def _channel_vector(value: Any, target: list[int] | None) -> np.ndarray | None:
    """``value`` as a 1-D vector if it is a float constant that varies only along the last axis of a
    float tensor of shape ``target`` (None: the other operand is not such a tensor)."""
    if not is_const(value) or target is None or not is_float(value):
        return None
    shape = np.shape(value)
    if len(shape) == 0 or len(shape) > len(target) or any(d != 1 for d in shape[:-1]) or shape[-1] != target[-1]:
        return None
    return np.asarray(value, np.float32).reshape(-1) if shape[-1] > 1 else None


def _bias_form(value: Any, other: Any) -> Any:
    """A constant operand with its leading 1-axes dropped when ``other`` has at least its rank, so TF
    sees a [N] bias that the converter fuses into FULLY_CONNECTED."""
    if is_const(value) and not is_const(other):
        shape = np.shape(value)
        if 0 < len(shape) <= rank_of(other) and all(d == 1 for d in shape[:-1]):
            return np.asarray(value).reshape(shape[-1:])
    return value


# ------------------------------------------------------------------------------------------ elementwise


@register("Add", grouped=True)
def _add(ctx, inputs, attrs):
    a, b = inputs
    if ctx.int8:
        for mask, x in ((a, b), (b, a)):
            keep = ctx.mask_keep(mask)
            if keep is not None and not is_const(x):
                # scores + additive mask -> select: an int8 ADD cannot add a huge negative constant (the
                # optimized kernel overflows), while a select saturates masked scores at the range bottom
                return tf.where(keep, ctx.merged(x), np.float32(ctx.mask_value))
    grouped = next((v for v in (a, b) if isinstance(v, Grouped)), None)
    index = grouped.index if grouped is not None else ctx.out_groups
    if index is not None and ctx.int8 and all(is_const(v) or isinstance(v, Grouped) or shape_of(v)[-1] in (1, sum(map(len, index))) for v in (a, b)):
        return Grouped([tf.add(_bias_form(x, y), _bias_form(y, x)) for x, y in zip(split(a, index), split(b, index))], index)
    a, b = ctx.merged(a), ctx.merged(b)
    return tf.add(_bias_form(a, b), _bias_form(b, a))


@register("Sub")
def _sub(ctx, inputs, attrs):
    a, b = inputs
    return tf.subtract(a, b)


@register("Mul", grouped=True)
def _mul(ctx, inputs, attrs):
    a, b = inputs
    if ctx.int8:
        for i, (vec, x) in enumerate(((_channel_vector(a, ctx.merged_shape(b)), b), (_channel_vector(b, ctx.merged_shape(a)), a))):
            norm = ctx.norm_of(1 - i) if vec is not None else None
            if norm is not None:  # scale a normalization's output: from its normalized values, one rounding
                index = norm["index"]
                gains, biases = split(norm["gain"] * vec, index), split(norm["bias"] * vec, index) if norm["bias"] is not None else [None] * len(index)
                parts = [channel_affine(ctx, n, g, b) for n, g, b in zip(norm["normed"], gains, biases)]
                return Grouped(parts, index) if len(parts) > 1 else parts[0]
            if vec is not None and isinstance(x, Grouped):
                return Grouped([channel_affine(ctx, p, v, None) for p, v in zip(x.parts, split(vec, x.index))], x.index)
            if vec is not None:
                return channel_affine(ctx, x, vec, None)
    return tf.multiply(ctx.merged(a), ctx.merged(b))


@register("Div")
def _div(ctx, inputs, attrs):
    a, b = inputs
    if is_float(a):
        return tf.divide(a, b)
    return tf.math.truncatediv(a, b)  # ONNX integer division truncates toward zero


@register("Mod")
def _mod(ctx, inputs, attrs):
    a, b = inputs
    return tf.math.truncatemod(a, b) if attrs.get("fmod", 0) else tf.math.floormod(a, b)


@register("Pow")
def _pow(ctx, inputs, attrs):
    x, p = inputs
    if is_const(p) and np.size(p) == 1:
        e = float(np.asarray(p).reshape(()))
        if e == 1.0:
            return tf.identity(x)
        if e == 2.0:
            return tf.multiply(x, x)
        if e == 3.0:
            return tf.multiply(tf.multiply(x, x), x)
        if e == 0.5:
            return tf.sqrt(x)
        if e == -0.5:
            return tf.math.rsqrt(x)
        if e == -1.0:
            return tf.divide(tf.ones_like(x), x)
    return tf.pow(x, tf.cast(p, x.dtype) if not is_const(p) else np.asarray(p, dtype=x.dtype.as_numpy_dtype))


def _unary(name: str, fn: Callable, quant: str = "compute"):
    register(name, quant=quant)(lambda ctx, inputs, attrs: fn(inputs[0]))


_unary("Sqrt", lambda x: tf.sqrt(x))
_unary("Exp", lambda x: tf.exp(x))
_unary("Log", lambda x: tf.math.log(x))
_unary("Abs", lambda x: tf.abs(x))
_unary("Sin", lambda x: tf.sin(x))
_unary("Cos", lambda x: tf.cos(x))
_unary("Floor", lambda x: tf.floor(x))
_unary("Ceil", lambda x: tf.math.ceil(x))
_unary("Round", lambda x: tf.round(x))  # half to even, as ONNX
_unary("Sign", lambda x: tf.sign(x))
_unary("Relu", lambda x: tf.nn.relu(x))
_unary("Sigmoid", lambda x: tf.sigmoid(x), quant="fixed")
_unary("Tanh", lambda x: tf.tanh(x), quant="fixed")
_unary("Softplus", lambda x: tf.nn.softplus(x))
_unary("Not", lambda x: tf.logical_not(x), quant="none")
_unary("Identity", lambda x: tf.identity(x) if not is_const(x) else x, quant="same")


@register("Neg")
def _neg(ctx, inputs, attrs):
    (x,) = inputs
    if ctx.int8 and is_float(x):  # the converter leaves NEG in float; a MUL by -1 it quantizes exactly
        return tf.multiply(x, np.float32(-1.0))
    return tf.negative(x)


@register("Reciprocal")
def _reciprocal(ctx, inputs, attrs):
    (x,) = inputs
    return tf.divide(tf.ones_like(x), x)


@register("Erf")
def _erf(ctx, inputs, attrs):
    """TFLite has no ERF kernel: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) from builtin ops.
    (The usual erf inside GELU never gets here: fusions.fuse() turns it into one GELU op.)"""
    (x,) = inputs
    a = tf.abs(x)
    t = tf.divide(1.0, 1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return tf.sign(x) * (1.0 - poly * tf.exp(-a * a))


@register("Gelu", grouped=True)
@register("Gelu", domain=EDGESDK_DOMAIN, grouped=True)
def _gelu(ctx, inputs, attrs):
    tanh = attrs.get("approximate", "none") == "tanh"
    x = inputs[0]
    if isinstance(x, Grouped):
        return Grouped([tf.nn.gelu(p, approximate=tanh) for p in x.parts], x.index)
    return tf.nn.gelu(x, approximate=tanh)


@register("LeakyRelu")
def _leaky_relu(ctx, inputs, attrs):
    return tf.nn.leaky_relu(inputs[0], alpha=attrs.get("alpha", 0.01))


@register("HardSigmoid")
def _hard_sigmoid(ctx, inputs, attrs):
    x = inputs[0]
    return tf.clip_by_value(attrs.get("alpha", 0.2) * x + attrs.get("beta", 0.5), 0.0, 1.0)


@register("Max", "Min", quant="same")
def _min_max(ctx, inputs, attrs):
    fn = tf.maximum if ctx.op_type == "Max" else tf.minimum
    out = inputs[0]
    for other in inputs[1:]:
        out = fn(out, other)
    return out


@register("Clip", quant="same")
def _clip(ctx, inputs, attrs):
    x = inputs[0]
    low = inputs[1] if len(inputs) > 1 else attrs.get("min")
    high = inputs[2] if len(inputs) > 2 else attrs.get("max")
    dtype = x.dtype if is_const(x) else x.dtype.as_numpy_dtype
    if low is not None:
        x = tf.maximum(x, np.asarray(low, dtype) if is_const(low) or isinstance(low, float) else low)
    if high is not None:
        x = tf.minimum(x, np.asarray(high, dtype) if is_const(high) or isinstance(high, float) else high)
    return x


# ----------------------------------------------------------------------------------- logic, comparisons


def _binary(name: str, fn: Callable):
    register(name, quant="none")(lambda ctx, inputs, attrs: fn(inputs[0], inputs[1]))


_binary("Equal", lambda a, b: tf.equal(a, b))
_binary("Less", lambda a, b: tf.less(a, b))
_binary("LessOrEqual", lambda a, b: tf.less_equal(a, b))
_binary("Greater", lambda a, b: tf.greater(a, b))
_binary("GreaterOrEqual", lambda a, b: tf.greater_equal(a, b))
_binary("And", lambda a, b: tf.logical_and(a, b))
_binary("Or", lambda a, b: tf.logical_or(a, b))
_binary("Xor", lambda a, b: tf.math.logical_xor(a, b))
_binary("BitwiseAnd", lambda a, b: tf.bitwise.bitwise_and(a, b))


@register("IsNaN", quant="none")
def _is_nan(ctx, inputs, attrs):
    (x,) = inputs
    if ctx.int8:  # an int8 tensor holds no NaN: a constant lets Where(IsNaN(p), 0, p) fold away
        return np.zeros(shape_of(x), np.bool_)
    return tf.not_equal(x, x)


@register("IsInf", quant="none")
def _is_inf(ctx, inputs, attrs):
    (x,) = inputs
    if ctx.int8:
        return np.zeros(shape_of(x), np.bool_)
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    if pos and neg:
        return tf.equal(tf.abs(x), np.inf)
    return tf.equal(x, np.inf if pos else -np.inf)


@register("Where", quant="same")
def _where(ctx, inputs, attrs):
    cond, x, y = inputs
    if is_const(cond) and (cond.all() or not cond.any()):
        chosen = x if cond.all() else y
        shape = np.broadcast_shapes(np.shape(cond), tuple(shape_of(x)), tuple(shape_of(y)))
        return chosen if tuple(shape_of(chosen)) == shape else tf.broadcast_to(chosen, shape)
    out = tf.where(cond, x, y)
    if is_const(x) and is_const(y) and is_float(x):
        out = ctx.q(out, "select")  # e.g. an additive mask: both values constant, give it its own range
        values = (float(np.max(x)), float(np.min(x)), float(np.max(y)), float(np.min(y)))
        if values[:2] == (0.0, 0.0) and values[2] <= ctx.mask_value / 2:
            ctx.mark_mask(out, cond)
        elif values[2:] == (0.0, 0.0) and values[0] <= ctx.mask_value / 2:
            ctx.mark_mask(out, tf.logical_not(cond))
    return out


@register("Cast", "CastLike", quant="compute")
def _cast(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.op_type == "CastLike":
        like = inputs[1]
        target = np.dtype(like.dtype if is_const(like) else like.dtype.as_numpy_dtype)
    else:
        target = np_dtype(attrs["to"])
    source = np.dtype(x.dtype if is_const(x) else x.dtype.as_numpy_dtype)
    if source == target:
        return x if is_const(x) else tf.identity(x)
    if ctx.int8 and np.issubdtype(target, np.floating) and not np.issubdtype(source, np.floating):
        # int8 TFLite cannot take a float CAST; a small integer range becomes a GATHER from a float table
        # (exact in int8 for masks of 0/1), the range observed on the calibration data.
        if source == np.bool_:
            return tf.gather(np.array([0.0, 1.0], target), tf.cast(x, tf.int32))
        found = ctx.int_range(x, "cast_source")
        if found is not None and found[1] - found[0] < 256:
            low, high = found
            index = tf.clip_by_value(x, np.asarray(low, source), np.asarray(high, source))
            if low:
                index = index - np.asarray(low, source)
            return tf.gather(np.arange(low, high + 1).astype(target), index)
    return tf.cast(x, target)


# ------------------------------------------------------------------------------------------ data movement


@register("Shape", quant="none")
def _shape(ctx, inputs, attrs):
    dims = np.array(shape_of(inputs[0]), np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return dims[start:end]


@register("Size", quant="none")
def _size(ctx, inputs, attrs):
    return np.array(int(np.prod(shape_of(inputs[0]))), np.int64)


@register("Constant", quant="none")
def _constant(ctx, inputs, attrs):
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in attrs:
            value = attrs[key]
            if key in ("value_float", "value_floats"):
                return np.asarray(value, np.float32)
            if key in ("value_int", "value_ints"):
                return np.asarray(value, np.int64)
            return ctx.constant(np.asarray(value))
    raise ModelError(f"node '{ctx.node_name}': Constant without a numeric value")


@register("ConstantOfShape", quant="none")
def _constant_of_shape(ctx, inputs, attrs):
    shape = static(ctx, inputs[0], "shape").astype(np.int64)
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32))).reshape(-1)
    return ctx.constant(np.full(tuple(shape), value[0], dtype=value.dtype))


@register("Range", quant="none")
def _range(ctx, inputs, attrs):
    start, limit, delta = inputs
    if all(is_const(v) for v in inputs):
        return np.arange(start, limit, delta).astype(np.asarray(start).dtype)
    return tf.range(start, limit, delta)


def _resolved_shape(ctx, x, shape: np.ndarray, allowzero: int) -> list[int]:
    source = shape_of(x)
    dims = [int(d) for d in shape]
    if not allowzero:
        dims = [source[i] if d == 0 else d for i, d in enumerate(dims)]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(source)) // max(known, 1)
    return dims


@register("Reshape", quant="same")
def _reshape(ctx, inputs, attrs):
    x, shape = inputs
    return tf.reshape(x, _resolved_shape(ctx, x, static(ctx, shape, "shape"), attrs.get("allowzero", 0)))


@register("Flatten", quant="same")
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    shape = shape_of(x)
    axis = attrs.get("axis", 1) % (len(shape) + 1) if shape else 0
    return tf.reshape(x, [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))])


@register("Unsqueeze", quant="same")
def _unsqueeze(ctx, inputs, attrs):
    x = inputs[0]
    shape = shape_of(x)
    rank = len(shape) + len(_axes(ctx, inputs, attrs))
    axes = sorted(a % rank for a in _axes(ctx, inputs, attrs))
    for a in axes:
        shape.insert(a, 1)
    return tf.reshape(x, shape)


@register("Squeeze", quant="same")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    shape = shape_of(x)
    axes = _axes(ctx, inputs, attrs)
    axes = {a % len(shape) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
    return tf.reshape(x, [d for i, d in enumerate(shape) if i not in axes])


@register("Transpose", quant="same")
def _transpose(ctx, inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm") or list(reversed(range(rank_of(x))))
    return tf.transpose(x, list(perm))


@register("Concat", quant="same")
def _concat(ctx, inputs, attrs):
    parts = [v for v in inputs if v is not None and (0 not in shape_of(v))]
    if len(parts) == 1:
        return parts[0]
    return tf.concat(parts, attrs["axis"])


@register("Split", quant="same")
def _split(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0)
    dim = shape_of(x)[axis]
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = [int(s) for s in static(ctx, inputs[1], "split")]
    elif "split" in attrs:
        sizes = list(attrs["split"])
    else:
        parts = attrs.get("num_outputs") or ctx.num_outputs
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    return tuple(tf.split(x, sizes, axis=axis))


@register("Slice", quant="same")
def _slice(ctx, inputs, attrs):
    x = inputs[0]
    if len(inputs) > 1:  # opset >= 10: starts, ends, axes, steps are inputs
        starts, ends = static(ctx, inputs[1], "starts"), static(ctx, inputs[2], "ends")
        axes = static(ctx, inputs[3], "axes") if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = static(ctx, inputs[4], "steps") if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    shape = shape_of(x)
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim, start, end, step = shape[int(axis)], int(start), int(end), int(step)
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[int(axis)] = slice(start, end if end >= 0 else None, step)
    return x[tuple(index)]


@register("Gather", quant="same")
def _gather(ctx, inputs, attrs):
    data, indices = inputs
    axis = attrs.get("axis", 0) % rank_of(data)
    if is_const(indices):
        indices = np.where(indices < 0, indices + shape_of(data)[axis], indices)
        if is_const(data):
            return np.take(data, indices, axis=axis)
    out = tf.gather(data, indices, axis=axis)
    if is_const(data) and is_float(data):  # an embedding: the whole table's range, no row clipped
        out = ctx.q(out, "table", fixed=(float(np.min(data)), float(np.max(data))))
    return out


@register("GatherND", quant="same")
def _gather_nd(ctx, inputs, attrs):
    data, indices = inputs
    return tf.gather_nd(data, indices, batch_dims=attrs.get("batch_dims", 0))


@register("Expand", quant="same")
def _expand(ctx, inputs, attrs):
    x, shape = inputs
    target = np.broadcast_shapes(tuple(shape_of(x)), tuple(int(d) for d in static(ctx, shape, "shape")))
    if tuple(shape_of(x)) == tuple(target):
        return x
    return np.broadcast_to(x, target).copy() if is_const(x) else tf.broadcast_to(x, target)


@register("Tile", quant="same")
def _tile(ctx, inputs, attrs):
    x, repeats = inputs
    return tf.tile(x, [int(r) for r in static(ctx, repeats, "repeats")])


@register("Trilu", quant="same")
def _trilu(ctx, inputs, attrs):
    x = inputs[0]
    k = int(static(ctx, inputs[1], "k")) if len(inputs) > 1 and inputs[1] is not None else 0
    rows, cols = shape_of(x)[-2:]
    keep = (np.triu if attrs.get("upper", 1) else np.tril)(np.ones((rows, cols), np.bool_), k)
    if is_const(x):
        return np.where(keep, x, np.zeros_like(x))
    return tf.where(keep, x, tf.zeros_like(x))


@register("CumSum")
def _cumsum(ctx, inputs, attrs):
    x, axis = inputs
    return tf.math.cumsum(
        x, int(static(ctx, axis, "axis")), exclusive=bool(attrs.get("exclusive", 0)), reverse=bool(attrs.get("reverse", 0))
    )


@register("Dropout", quant="same")
def _dropout(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.num_outputs > 1:
        return x, np.ones(shape_of(x), np.bool_)
    return x


# ------------------------------------------------------------------------------------------- reductions


def _reduce(name: str, fn: Callable, quant: str = "compute"):
    def lower(ctx, inputs, attrs):
        x = inputs[0]
        axes = _axes(ctx, inputs, attrs)
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(rank_of(x)))
        return fn(x, axis=[a % rank_of(x) for a in axes], keepdims=bool(attrs.get("keepdims", 1)))

    register(name, quant=quant)(lower)


_reduce("ReduceMean", lambda x, axis, keepdims: tf.reduce_mean(x, axis, keepdims))
_reduce("ReduceSum", lambda x, axis, keepdims: tf.reduce_sum(x, axis, keepdims))
_reduce("ReduceMax", lambda x, axis, keepdims: tf.reduce_max(x, axis, keepdims), quant="same")
_reduce("ReduceMin", lambda x, axis, keepdims: tf.reduce_min(x, axis, keepdims), quant="same")
_reduce("ReduceProd", lambda x, axis, keepdims: tf.reduce_prod(x, axis, keepdims))


@register("ArgMax", "ArgMin", quant="none")
def _argmax(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0) % rank_of(x)
    out = (tf.argmax if ctx.op_type == "ArgMax" else tf.argmin)(x, axis=axis, output_type=tf.int64)
    return tf.expand_dims(out, axis) if attrs.get("keepdims", 1) else out


# ---------------------------------------------------------------------------------------- linear algebra


def _linear(x, weight: np.ndarray, bias: np.ndarray | None):
    """x[..., K] @ W[K, N] (+ b): TF's MatMul with a constant right side and a [N] bias, which the
    converter turns into one FULLY_CONNECTED (per-output-channel int8 filter, int32 bias)."""
    y = tf.matmul(x, weight.astype(np.float32)) if rank_of(x) > 1 else tf.matmul(tf.expand_dims(x, 0), weight)[0]
    return y + bias.astype(np.float32) if bias is not None else y


@register("MatMul", grouped=True)
def _matmul(ctx, inputs, attrs):
    a, b = ctx.merged(inputs[0]), inputs[1]
    if is_const(b) and not is_const(a) and np.ndim(b) == 2 and is_float(a):
        if ctx.out_groups is not None and ctx.int8:  # a residual-stream output: one FC per channel group
            return Grouped([_linear(a, np.asarray(b)[:, i], None) for i in ctx.out_groups], ctx.out_groups)
        return _linear(a, np.asarray(b), None)
    b = ctx.merged(b)
    if rank_of(a) == 1 or rank_of(b) == 1:
        a2 = tf.expand_dims(a, 0) if rank_of(a) == 1 else a
        b2 = tf.expand_dims(b, -1) if rank_of(b) == 1 else b
        out = tf.matmul(a2, b2)
        if rank_of(b) == 1:
            out = tf.squeeze(out, -1)
        return tf.squeeze(out, -2) if rank_of(a) == 1 else out
    return tf.matmul(a, b)


@register("Gemm")
def _gemm(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        a = tf.transpose(a)
    if is_const(b):
        w = np.asarray(b).T if attrs.get("transB", 0) else np.asarray(b)
        bias = None if c is None else (beta * np.asarray(c, np.float32)).astype(np.float32)
        if bias is not None and bias.ndim > 1 and bias.shape[0] != 1:
            return _linear(a, (alpha * w).astype(np.float32), None) + bias
        return _linear(a, (alpha * w).astype(np.float32), None if bias is None else bias.reshape(-1))
    y = tf.matmul(a, b, transpose_b=bool(attrs.get("transB", 0)))
    if alpha != 1.0:
        y = y * alpha
    return y if c is None else y + beta * c


@register("Softmax", "LogSoftmax", quant="fixed")
def _softmax(ctx, inputs, attrs):
    x = inputs[0]
    rank = rank_of(x)
    fn = tf.nn.softmax if ctx.op_type == "Softmax" else tf.nn.log_softmax
    if ctx.opset < 13:  # the old definition: softmax over the input flattened to 2-D at ``axis``
        axis = attrs.get("axis", 1) % rank
        if axis == rank - 1:
            return fn(x, axis=-1)
        shape = shape_of(x)
        flat = tf.reshape(x, [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))])
        return tf.reshape(fn(flat, axis=-1), shape)
    axis = attrs.get("axis", -1) % rank
    if axis == rank - 1:
        return fn(x, axis=-1)
    perm = [i for i in range(rank) if i != axis] + [axis]
    inverse = list(np.argsort(perm))
    return tf.transpose(fn(tf.transpose(x, perm), axis=-1), inverse)


# ----------------------------------------------------------------------------------------- normalization


def _norm_setup(ctx, x, axis: int, scale, bias):
    rank = len(ctx.merged_shape(x) or shape_of(x))
    axis = axis % rank
    if axis != rank - 1 and ctx.int8:
        raise ModelError(f"node '{ctx.node_name}': int8 normalization over several axes is not supported")
    scale = None if scale is None else static(ctx, scale, "scale").astype(np.float32).reshape(-1)
    bias = None if bias is None else static(ctx, bias, "bias").astype(np.float32).reshape(-1)
    return list(range(axis, rank)), scale, bias


def _sum_of_squares(ctx, x, tag: str):
    """Σ x² over the last axis as an int8 BATCH_MATMUL of x with itself: the products accumulate in int32
    exactly and only the sum is rounded (an int8 x·x would round every square first)."""
    shape = shape_of(x)
    flat = tf.reshape(x, [int(np.prod(shape[:-1])), 1, shape[-1]])
    total = ctx.q(tf.matmul(flat, flat, transpose_b=True), tag)
    return tf.reshape(total, shape[:-1] + [1])


def _normalize_int8(ctx, x, gain, bias, eps: float, center: bool):
    """LayerNorm (center) or RMSNorm in int8, on a plain tensor or on channel groups.

    Mean and Σ(x-mean)² come from int32 accumulations (MEAN/SUM, BATCH_MATMUL); the centred values stay
    on the input's grid (the SUB then only rounds the mean). √C, the gain and the bias go into one
    depthwise convolution per group; the normalized groups are kept (ctx.remember_norm) so a SmoothQuant
    scale that follows starts from them rather than from the rounded output."""
    grouped = isinstance(x, Grouped)
    index = x.index if grouped else (ctx.out_groups or [np.arange(shape_of(x)[-1])])
    parts = split(x, index) if (grouped or len(index) > 1) else [x]
    channels = sum(len(i) for i in index)
    centered = parts
    if center:
        if len(parts) == 1:
            mean = ctx.q(tf.reduce_mean(parts[0], -1, keepdims=True), "mean")
            centered = [ctx.q(parts[0] - mean, "centered0", fixed=ctx.range_of(parts[0]))]
        else:
            total = ctx.q(tf.reduce_sum(parts[0], -1, keepdims=True), "sum0")
            for j, p in enumerate(parts[1:], 1):
                total = ctx.q(total + ctx.q(tf.reduce_sum(p, -1, keepdims=True), f"sum{j}"), f"sum0_{j}")
            mean = ctx.q(total * np.float32(1.0 / channels), "mean")
            centered = [ctx.q(p - mean, f"centered{j}", fixed=ctx.range_of(p)) for j, p in enumerate(parts)]

    total = _sum_of_squares(ctx, centered[0], "sum_squares0")
    for j, p in enumerate(centered[1:], 1):
        total = ctx.q(total + _sum_of_squares(ctx, p, f"sum_squares{j}"), f"sum_squares0_{j}")
    total = ctx.q(total + np.float32(eps * channels), "sum_squares")
    inv = ctx.q(tf.math.rsqrt(total), "rsqrt")
    normed = [ctx.q(p * inv, f"normalized{j}") for j, p in enumerate(centered)]
    gain = np.full(channels, math.sqrt(channels), np.float32) * (1.0 if gain is None else gain)
    ctx.remember_norm({"normed": normed, "index": index, "gain": gain, "bias": bias})
    biases = split(bias, index) if bias is not None else [None] * len(index)
    outs = [channel_affine(ctx, n, g, b) for n, g, b in zip(normed, split(gain, index), biases)]
    return Grouped(outs, index) if len(outs) > 1 or grouped else outs[0]


@register("LayerNormalization", quant="compute", grouped=True)
def _layer_norm(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    eps = attrs.get("epsilon", 1e-5)
    axes, scale, bias = _norm_setup(ctx, x, attrs.get("axis", -1), scale, bias)
    if ctx.int8 and ctx.num_outputs == 1:
        return _normalize_int8(ctx, x, scale, bias, eps, center=True)
    x = ctx.merged(x)
    mean = tf.reduce_mean(x, axes, keepdims=True)
    centered = x - mean
    var = tf.reduce_mean(centered * centered, axes, keepdims=True)
    inv = tf.math.rsqrt(var + eps)
    y = centered * inv
    if scale is not None:
        y = y * scale
    y = y + bias if bias is not None else y
    return (y, mean, inv)[: ctx.num_outputs] if ctx.num_outputs > 1 else y


@register("SimplifiedLayerNormalization", quant="compute", grouped=True)
@register("SimplifiedLayerNormalization", quant="compute", domain="com.microsoft", grouped=True)
@register("RMSNorm", quant="compute", domain=EDGESDK_DOMAIN, grouped=True)
def _rms_norm(ctx, inputs, attrs):
    x = inputs[0]
    scale = inputs[1] if len(inputs) > 1 else None
    eps = attrs.get("epsilon", 1e-5)
    axes, scale, _ = _norm_setup(ctx, x, attrs.get("axis", -1), scale, None)
    if ctx.int8 and ctx.num_outputs == 1:
        return _normalize_int8(ctx, x, scale, None, eps, center=False)
    x = ctx.merged(x)
    inv = tf.math.rsqrt(tf.reduce_mean(x * x, axes, keepdims=True) + eps)
    y = x * inv
    return y * scale if scale is not None else y


# ------------------------------------------------------------------------------------------ quantization


def _per_axis(param: np.ndarray | Any, x_rank: int, axis: int, block: int = 0, length: int = 0):
    """Broadcast a per-axis (or block-wise) scale/zero point against an input of rank x_rank."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    if block:
        return np.repeat(param, block, axis=axis % x_rank).take(range(length), axis=axis % x_rank)
    shape = [1] * x_rank
    shape[axis % x_rank] = -1
    return param.reshape(shape)


_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


@register("QuantizeLinear", quant="none")
def _quantize(ctx, inputs, attrs):
    x, scale = inputs[0], static(ctx, inputs[1], "scale")
    zp = static(ctx, inputs[2], "zero point") if len(inputs) > 2 and inputs[2] is not None else np.array(0, np.uint8)
    if zp.dtype not in _QRANGE:
        raise ModelError(f"node '{ctx.node_name}': QuantizeLinear to {zp.dtype} is not supported")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    length = shape_of(x)[axis % rank_of(x)] if scale.ndim else 0
    s = _per_axis(scale, rank_of(x), axis, block, length).astype(np.float32)
    z = _per_axis(zp, rank_of(x), axis, block, length).astype(np.float32)
    low, high = _QRANGE[zp.dtype]
    q = tf.clip_by_value(tf.round(x / s) + z, float(low), float(high))
    return tf.cast(q, zp.dtype)


@register("DequantizeLinear", quant="compute")
def _dequantize(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 else None
    if not is_const(scale):  # after DynamicQuantizeLinear: scale and zero point are tensors
        values = tf.cast(x, tf.float32) - (0.0 if zp is None else tf.cast(zp, tf.float32))
        return values * scale
    scale = np.asarray(scale)
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    length = shape_of(x)[axis % rank_of(x)] if scale.ndim else 0
    s = _per_axis(scale, rank_of(x), axis, block, length).astype(np.float32)
    z = None if zp is None else _per_axis(static(ctx, zp, "zero point"), rank_of(x), axis, block, length).astype(np.float32)
    if is_const(x):  # a weight: exactly what ORT computes, (q - zp) · scale in float32
        values = np.asarray(x).astype(np.float32)
        return (values - z) * s if z is not None else values * s
    values = tf.cast(x, tf.float32)
    return (values - z) * s if z is not None else values * s


@register("DynamicQuantizeLinear", quant="none")
def _dynamic_quantize(ctx, inputs, attrs):
    """uint8 with the range of this very tensor (ONNX's definition; the range always includes 0)."""
    (x,) = inputs
    low = tf.minimum(tf.reduce_min(x), 0.0)
    high = tf.maximum(tf.reduce_max(x), 0.0)
    scale = (high - low) / 255.0
    safe = tf.where(scale > 0, scale, tf.ones_like(scale))
    zp = tf.clip_by_value(tf.round(-low / safe), 0.0, 255.0)
    q = tf.clip_by_value(tf.round(x / safe) + zp, 0.0, 255.0)
    return tf.cast(q, tf.uint8), scale, tf.cast(zp, tf.uint8)
