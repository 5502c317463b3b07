"""Helpers shared by the per-op lowerings (ops_*.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ModelError
from .tensors import is_const, is_float, rank_of, shape_of, static, tf


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
