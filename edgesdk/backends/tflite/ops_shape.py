"""Per-op lowerings (see ops.py): data movement and shapes (Shape, Constant, Range, Reshape, Transpose,
Concat, Split, Slice, Gather, Expand, Tile, Trilu, CumSum, Dropout...)."""

from __future__ import annotations

import numpy as np

from ...errors import ModelError
from .groups import Grouped
from .ops_common import _axes
from .registry import register
from .tensors import is_const, is_float, rank_of, shape_of, static, tf

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
    if is_const(data) and is_float(data):  # an embedding: the whole table's range, no row clipped
        if ctx.int8 and ctx.out_groups is not None and axis == 0 and rank_of(data) == 2:
            # the residual stream's channel groups: a table per group, not a GATHER of the channels after
            tables = [np.take(data, i, axis=1) for i in ctx.out_groups]
            return Grouped([_embedding(ctx, t, indices, f"table{j}") for j, t in enumerate(tables)], ctx.out_groups)
        return _embedding(ctx, data, indices, "table", axis)
    return tf.gather(data, indices, axis=axis)


def _embedding(ctx, table: np.ndarray, indices, tag: str, axis: int = 0):
    return ctx.q(tf.gather(table, indices, axis=axis), tag, fixed=(float(np.min(table)), float(np.max(table))))


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
