"""The values a lowering handles: a ``tf.Tensor`` (known only at run time) or a numpy array (a
constant), with the helpers that treat both alike, and TensorFlow itself, imported on first use."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...errors import ModelError


def import_tf():
    """TensorFlow, imported on first use with its C++ logging silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


class _LazyTF:
    def __getattr__(self, name: str) -> Any:
        return getattr(import_tf(), name)


tf = _LazyTF()

def is_const(value: Any) -> bool:
    return isinstance(value, (np.ndarray, np.generic))


def static(ctx, value: Any, what: str = "this input") -> np.ndarray:
    """A value needed at conversion time, as numpy."""
    if is_const(value):
        return np.asarray(value)
    known = tf.get_static_value(value)
    if known is None:
        raise ModelError(f"node '{ctx.node_name}': {what} must be known at conversion time (static shapes)")
    return np.asarray(known)


def shape_of(value: Any) -> list[int]:
    return list(np.shape(value)) if is_const(value) else value.shape.as_list()


def rank_of(value: Any) -> int:
    return len(shape_of(value))


def is_float(value: Any) -> bool:
    dtype = value.dtype if is_const(value) else value.dtype.as_numpy_dtype
    return np.issubdtype(np.dtype(dtype), np.floating)
