"""ONNX Runtime sessions for graphs held in memory or on disk (the reference runtime of the host)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, first_line


def ort_session(model: Any, threads: int | None = None, optimization: str = "all", low_memory: bool = False,
                arena: bool = True):
    """A CPU session for a Graph, ONNX bytes or a file path. ``threads`` None lets ORT choose. ``arena``
    false gives buffers back to the system after each run (a little slower, a lower peak).

    ``low_memory``: no weight prepacking, so weights stay in the memory-mapped file instead of being copied
    into packed buffers (a 1 GB model: 0.06 GB instead of 1.8 GB at load; matmuls about 2x slower). For float
    references only: ORT's unpacked MatMulNBits computes differently from its packed int8 kernels."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if low_memory:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if low_memory or not arena:
        # Buffers go back to the system after each run instead of staying in ORT's arena: a calibration run
        # exposing every activation of a 262k-vocabulary LM would otherwise keep its high-water mark.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if getattr(model, "needs_external_data", False):
        # Over the protobuf limit: ORT reads it from a file with its weights beside it. The file can go
        # once the session holds the weights.
        with tempfile.TemporaryDirectory(prefix="edgesdk-ort-") as tmp:
            return _session(ort, str(model.save(Path(tmp) / "model.onnx")), options)
    source = model.to_bytes() if hasattr(model, "to_bytes") else (str(model) if isinstance(model, Path) else model)
    return _session(ort, source, options)


def _session(ort, source, options):
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None


# Weights at least this large are fed from Python's arrays; smaller ones (shapes, scales) stay constants
# so ORT can still fold and infer with them.
_FED_WEIGHT_BYTES = 1 << 16


class WeightFedSession:
    """An ORT session that observes a Graph: its large weights are graph inputs fed from the Graph's own
    arrays at every run, which ORT reads in place (a numpy input is not copied), so the weights are held
    once, not once in Python and again in ORT, and no temporary model file is written. Only the nodes the
    requested outputs need are kept (ORT runs every node of a graph, even ones no output reads). Constant
    folding cannot see the fed weights: for observing a graph, not for measuring its speed."""

    def __init__(self, graph: Any, outputs: list[str]):
        import onnx_ir as ir
        from onnx_ir.passes.common import RemoveUnusedNodesPass

        from .graph import numpy_dtype

        model = graph.model.clone()  # the structure is copied; the weight tensors are shared
        body = model.graph
        self.weights = {
            name: value.const_value for name, value in body.initializers.items()
            if value.const_value is not None and numpy_dtype(value.dtype) is not None
            and value.const_value.nbytes >= _FED_WEIGHT_BYTES
        }
        values = ir.convenience.create_value_mapping(body)
        for name in self.weights:
            body.inputs.append(body.initializers.pop(name))
        body.outputs[:] = [values[name] for name in outputs]
        RemoveUnusedNodesPass()(model)
        self.session = ort_session(ir.serde.serialize_model(model).SerializeToString(), optimization="basic",
                                   low_memory=True)

    def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        weights = {name: tensor.numpy() for name, tensor in self.weights.items()}
        return self.session.run(outputs, feed | weights)


def run(session, feed: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    names = outputs or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))
