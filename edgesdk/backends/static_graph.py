"""The graph with every shape fixed: the input shapes of one sample, then constant folding, so the shape
arithmetic an exporter leaves behind (Shape, Range, Concat of dims, masks built from them) becomes constants
and every value left has a static shape (a C program plans its memory from them; Core ML takes fixed shapes).

Quantized weights are not folded: a DequantizeLinear of a constant stays, so a lowering sees the int8/int4
codes and their scales (it reads them, it does not re-quantize)."""

from __future__ import annotations

import numpy as np

from ..errors import CalibrationError, ModelError

FOLD_LIMIT = 1 << 22  # elements: folded shape and mask constants stay small; weights are never folded


def _keep_quantized(node) -> bool | None:
    return False if node.op_type == "DequantizeLinear" else None


def staticize(graph, feed: dict[str, np.ndarray], backend: str = "C"):
    """A copy of graph's onnx_ir model with the input shapes of ``feed`` and its shape logic folded."""
    import onnx_ir as ir
    from onnxscript import optimizer

    model = graph.model.clone()  # the structure copied, the weights shared (not serialized again)
    for value in model.graph.inputs:
        if value.name not in feed:
            raise CalibrationError(f"the {backend} backend fixes input shapes from a sample: it has no input '{value.name}'")
        shape = feed[value.name].shape
        if value.shape is not None and len(value.shape) != len(shape):
            raise CalibrationError(f"input '{value.name}': a sample of shape {list(shape)} for a "
                                   f"{len(value.shape)}-d input")
        value.shape = ir.Shape(list(shape))
    optimizer.optimize_ir(model, should_fold=_keep_quantized, input_size_limit=FOLD_LIMIT,
                          output_size_limit=FOLD_LIMIT)
    for node in model.graph:
        for value in node.outputs:
            if value.uses() or value in model.graph.outputs:
                if value.shape is None or not value.shape.is_static():
                    raise ModelError(f"node '{node.name}' ({node.op_type}): output '{value.name}' has no static "
                                     f"shape after fixing the input shapes ({value.shape}); the {backend} backend needs one")
    return model
