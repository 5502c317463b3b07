"""Per-op lowerings: one small function per ONNX op type, producing TF ops from TF tensors.

A lowering is ``fn(ctx, inputs, attrs) -> value | tuple of values``. ``inputs`` holds one entry per
ONNX input: a ``tf.Tensor`` (known only at run time), a numpy array (a constant: initializers and
everything computed from constants and static shapes), or None for an omitted optional input.
Lowerings that need a value at conversion time (a Reshape's shape, a Slice's starts) read it with
``static(ctx, value)``: shapes are static, so shape arithmetic is folded to constants while tracing.

``ctx`` is the tracing context (tracer.Context). ``ctx.int8`` is set when the model is built for
full-integer TFLite: the lowering then picks forms TFLite runs well in int8 (a per-channel scale as a
1x1 depthwise convolution, an additive attention mask as a select, Σx² as an int32-accumulated
BATCH_MATMUL). ``ctx.q(tensor, tag)`` gives an intermediate tensor its own int8 range. Lowerings
registered with ``grouped=True`` also take and return ``Grouped`` values (channel groups, groups.py).

The registry (``register``, ``lookup``, the quantization kinds) is registry.py; the lowerings live in
ops_elementwise.py, ops_shape.py and ops_nn.py (shared helpers: ops_common.py). This module imports them
all, so every lowering is registered, and re-exports the registry."""

from __future__ import annotations

# registers every lowering, in the order of the original single module
from . import ops_elementwise  # noqa: F401

# isort: split
from . import ops_shape  # noqa: F401

# isort: split
from . import ops_nn  # noqa: F401

# isort: split
from .ops_common import ONNX_DTYPES, channel_affine, np_dtype
from .registry import EDGESDK_DOMAIN, LOWERINGS, QUANT_KINDS, Lowering, lookup, register

__all__ = [
    "EDGESDK_DOMAIN", "LOWERINGS", "ONNX_DTYPES", "QUANT_KINDS", "Lowering",
    "channel_affine", "lookup", "np_dtype", "register",
]
