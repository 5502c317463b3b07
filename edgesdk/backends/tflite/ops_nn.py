"""Per-op lowerings (see ops.py): reductions, MatMul/Gemm, Softmax, normalizations, quantize/dequantize."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ModelError
from .groups import Grouped, split, unpermute
from .ops_common import _axes, channel_affine
from .registry import EDGESDK_DOMAIN, register
from .tensors import is_const, is_float, rank_of, shape_of, static, tf

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
    a, b = inputs
    if isinstance(a, Grouped) and is_const(b) and np.ndim(b) == 2:
        a, order = ctx.joined(a)
        b = np.asarray(b)[order]  # the weight rows follow the groups' channel order: no GATHER back
    a = ctx.merged(a)
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


@register("MaskedMean", domain=EDGESDK_DOMAIN, quant="same", grouped=True)
def _masked_mean(ctx, inputs, attrs):
    """Σ_t x·m / max(Σ_t m, eps) over axis 1 (fusions: mean pooling). In int8 one BATCH_MATMUL of the
    per-token weights m/Σm with x, rounded once at the mean's range: an int8 sum over the tokens needs a
    range for the longest sentence, which left short ones few levels."""
    x, mask = inputs
    eps, keep = np.float32(attrs["epsilon"]), bool(attrs["keepdims"])
    if not ctx.int8:
        return tf.reduce_sum(x * mask, 1, keepdims=keep) / tf.maximum(tf.reduce_sum(mask, 1, keepdims=keep), eps)
    index = x.index if isinstance(x, Grouped) else None
    if index is not None:
        x, _ = ctx.joined(x)
    count = ctx.q(tf.maximum(tf.reduce_sum(mask, 1, keepdims=True), eps), "count")
    share = ctx.q(np.float32(1.0) / count, "share")  # a MUL keeps masked tokens at exactly 0 (LiteRT's DIV does not)
    weights = ctx.q(mask * share, "weights", fixed=(0.0, 1.0))
    rows = tf.reshape(weights, [shape_of(weights)[0], 1, -1])  # [B, 1, T]: the mask has a last axis of 1
    mean = ctx.q(tf.matmul(rows, x), "mean")  # [B, 1, C]
    mean = mean if keep else tf.squeeze(mean, 1)
    return unpermute(mean, index) if index is not None else mean


# ----------------------------------------------------------------------------------------- normalization


def _norm_setup(ctx, x, axis: int, scale, bias):
    rank = len(ctx.merged_shape(x) or shape_of(x))
    axis = axis % rank
    if axis != rank - 1 and ctx.int8:
        raise ModelError(f"node '{ctx.node_name}': int8 normalization over several axes is not supported")
    scale = None if scale is None else static(ctx, scale, "scale").astype(np.float32).reshape(-1)
    bias = None if bias is None else static(ctx, bias, "bias").astype(np.float32).reshape(-1)
    return list(range(axis, rank)), scale, bias


def _sum_of_squares(ctx, x, tag: str, fixed: tuple[float, float] | None = None, grid: int = 0):
    """Σ x² over the last axis as an int8 BATCH_MATMUL of x with itself: the products accumulate in int32
    exactly and only the sum is rounded (an int8 x·x would round every square first). Each ``grid`` reshapes
    to its own rank: the converter would merge identical matmuls, leaving one output for two ranges."""
    shape = shape_of(x)
    flat = tf.reshape(x, [int(np.prod(shape[:-1]))] + [1] * (grid + 1) + [shape[-1]])
    total = ctx.q(tf.matmul(flat, flat, transpose_b=True), tag, fixed=fixed)
    return tf.reshape(total, shape[:-1] + [1])


# Σ(x-mean)² per token spans up to ~300x between ordinary and outlier tokens (all-MiniLM-L6-v2), and int8
# RSQRT only sees its input's 256 levels: on one grid ordinary tokens get 1-2 levels. So the sum is also
# taken on finer grids, each this much narrower than the one before (a value at the bottom of a grid still
# has 255/ratio levels), as many as the calibration spread needs.
VARIANCE_GRID_RATIO = 8.0
MAX_VARIANCE_GRIDS = 4
SATURATION_MARGIN = 0.9  # a sum above this share of a grid's top is read from the next coarser grid


def _sum_on_grid(ctx, centered, eps_total: float, grid: int, top: float | None, grid0: list):
    """Σ over the groups of Σ(x-mean)², + eps·C, on grid ``grid`` (0: the observed ranges; k > 0: every
    range capped at ``top``, the parts whose own range already fits reused from grid 0)."""
    def capped(tag: str):
        if grid == 0:
            return None, tag
        observed = ctx.observed_range(tag)
        high = top if observed is None else min(observed[1], top)
        return (0.0, high), f"{tag}@{grid}"

    parts = []
    for j, p in enumerate(centered):
        fixed, tag = capped(f"sum_squares{j}")
        if grid == 0:
            grid0.append(_sum_of_squares(ctx, p, tag))
            parts.append(grid0[j])
        elif fixed[1] >= ctx.observed_range(f"sum_squares{j}")[1]:
            parts.append(grid0[j])  # its own range already fits this grid
        else:
            parts.append(_sum_of_squares(ctx, p, tag, fixed, grid))
    total = parts[0]
    for j, part in enumerate(parts[1:], 1):
        fixed, tag = capped(f"sum_squares0_{j}")
        total = ctx.q(total + part, tag, fixed=fixed)
    fixed, tag = capped("sum_squares")
    return ctx.q(total + np.float32(eps_total), tag, fixed=fixed)


def _inverse_std(ctx, centered, eps_total: float):
    """rsqrt(Σ(x-mean)² + eps·C) per token, from the finest variance grid the token's sum fits in."""
    grid0: list = []
    total = _sum_on_grid(ctx, centered, eps_total, 0, None, grid0)
    inv = ctx.q(tf.math.rsqrt(total), "rsqrt")
    whole, inv_range = ctx.observed_range("sum_squares"), ctx.observed_range("rsqrt")
    if whole is None or inv_range is None or inv_range[1] <= 0:
        return inv
    smallest = 1.0 / inv_range[1] ** 2  # the smallest sum seen in calibration
    grids = 1 + math.floor(math.log(max(whole[1] / smallest, 1.0)) / math.log(VARIANCE_GRID_RATIO))
    grids = min(grids, MAX_VARIANCE_GRIDS)
    tops = [whole[1] / VARIANCE_GRID_RATIO**k for k in range(grids)]
    totals, invs = [total], [inv]
    for k in range(1, grids):
        totals.append(_sum_on_grid(ctx, centered, eps_total, k, tops[k], grid0))
        invs.append(ctx.q(tf.math.rsqrt(totals[k]), f"rsqrt@{k}", fixed=inv_range))
    inv = invs[-1]
    for k in range(grids - 2, -1, -1):
        # grid k where grid k+1 saturates (with a margin for grid k's rounding). The test reads the
        # rsqrt values: LiteRT's int8 comparison is wrong for input scales above 1, as big sums have.
        inv = tf.where(invs[k] < np.float32((SATURATION_MARGIN * tops[k + 1]) ** -0.5), invs[k], inv)
    return inv


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

    inv = _inverse_std(ctx, centered, eps * channels)
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
    y, mean, inv = _normalize_float(ctx, x, axes, scale, bias, eps, center=True)
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
    return _normalize_float(ctx, x, axes, scale, None, eps, center=False)[0]


def _normalize_float(ctx, x, axes, scale, bias, eps: float, center: bool):
    """(y, mean, 1/σ) in float: LayerNorm (``center``) or RMSNorm (no mean taken out; mean is None)."""
    x = ctx.merged(x)
    mean = tf.reduce_mean(x, axes, keepdims=True) if center else None
    centered = x - mean if center else x
    inv = tf.math.rsqrt(tf.reduce_mean(centered * centered, axes, keepdims=True) + eps)
    y = centered * inv
    if scale is not None:
        y = y * scale
    return (y + bias if bias is not None else y), mean, inv


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
