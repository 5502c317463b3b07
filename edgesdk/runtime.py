"""ONNX Runtime sessions for graphs held in memory or on disk (the reference runtime of the host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError


def ort_session(model: Any, threads: int | None = None, optimization: str = "all"):
    """A CPU session for a Graph, ONNX bytes or a file path. ``threads`` None lets ORT choose."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    source = model.to_bytes() if hasattr(model, "to_bytes") else (str(model) if isinstance(model, Path) else model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX Runtime cannot load the model: {text}") from None


def run(session, feed: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    names = outputs or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))
