"""Per-op lowerings (see ops.py): elementwise arithmetic and math, activations, logic and comparisons,
Where, Cast."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .groups import Grouped, split
from .ops_common import _bias_form, _channel_vector, channel_affine, np_dtype
from .registry import EDGESDK_DOMAIN, register
from .tensors import is_const, is_float, shape_of, tf

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
