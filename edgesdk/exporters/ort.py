"""ONNX Runtime exporter: model.onnx runnable by plain onnxruntime, lowered to ORT's fused kernels."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..graph import Graph
from ..targets import Target
from .ort_lowering import MS, lower_for_ort

FORMAT = "onnx"
RUNTIME = "onnxruntime"


def lower(graph: Graph, target: Target) -> tuple[Graph, dict[str, int]]:
    """A copy of ``graph`` in the form this target's ORT runs fastest."""
    lowered = graph.clone()
    counts: dict[str, int] = {}
    if target.ort_contrib_ops:
        with progress.step("lowering to ONNX Runtime kernels"):
            counts = lower_for_ort(lowered.model.graph, target.ort_skip_layernorm_fusion, target.ort_nbits_accuracy_level)
        if counts:
            lowered.model.opset_imports.setdefault(MS, 1)
    return lowered, counts


def write(graph: Graph, target: Target, out_dir: Path) -> tuple[Path, dict]:
    lowered, counts = lower(graph, target)
    model_path = out_dir / "model.onnx"
    lowered.save(model_path)
    return model_path, {"ort_kernels": counts}


def runner(model_path: Path, threads: int | None = None):
    """A function feed -> {output name: array} running the exported model on this machine."""
    from ..runtime import ort_session, run

    session = ort_session(Path(model_path), threads=threads)
    return lambda feed: run(session, feed)
