"""Import an ONNX file, with errors that name the file, the node and the operator."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir

from ..errors import ModelError, UnsupportedOperatorError, first_line
from ..graph import Graph

# Contrib domains that ONNX Runtime implements; other custom domains are unsupported unless the model
# defines the operator as a local function.
RUNTIME_DOMAINS = {"com.microsoft", "com.microsoft.nchwc", "ai.onnx.ml"}
MIN_OPSET, MAX_OPSET = 13, 23


def load_onnx(path: Path) -> Graph:
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        inner = path / "model.onnx"
        if not inner.exists():
            raise ModelError(f"{path}: a directory without model.onnx")
        path = inner
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: the file is empty")
    try:
        # The graph without its external weights: a model over 2 GB keeps them in files beside it.
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a valid ONNX model (truncated or not ONNX): {exc}") from None
    if not proto.graph.node:
        raise ModelError(f"{path}: not a valid ONNX model (it has no graph nodes; truncated or not ONNX)")
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    check_operators(proto, path)
    try:
        # Given a path, the checker reads external weights itself and handles models over 2 GB.
        onnx.checker.check_model(str(path) if external else proto)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: the ONNX checker rejects the model: {first_line(exc)}") from None
    if external:
        check_external_data(proto, path)
        model = ir.load(path)  # weights stay in their files (memory-mapped) until something reads them
    else:
        model = ir.serde.deserialize_model(proto)
    return Graph(model=model, name=path.stem if path.stem != "model" else path.parent.name, source=str(path))


def check_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Every external weight lies in a file beside the model that is long enough to hold it."""
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entry = {e.key: e.value for e in tensor.external_data}
        location = Path(entry.get("location", ""))
        if location.is_absolute() or ".." in location.parts:
            raise ModelError(f"{path}: weight '{tensor.name}' points outside the model's folder ({location})")
        file = path.parent / location
        end = int(entry.get("offset", 0)) + int(entry.get("length", 0))
        if not file.is_file():
            raise ModelError(f"{path}: weight '{tensor.name}' is in {location}, which is missing")
        if file.stat().st_size < end:
            raise ModelError(f"{path}: {location} is truncated (weight '{tensor.name}' ends at byte {end})")


def check_operators(proto: onnx.ModelProto, path: Path) -> None:
    opsets = {o.domain or "": o.version for o in proto.opset_import}
    version = opsets.get("", opsets.get("ai.onnx", 0))
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise ModelError(f"{path}: ONNX opset {version} is not supported (use opset {MIN_OPSET}..{MAX_OPSET})")
    local_functions = {(f.domain, f.name) for f in proto.functions}
    for graph in _graphs(proto.graph):
        for node in graph.node:
            domain = node.domain or ""
            if (domain, node.op_type) in local_functions:
                continue
            if domain in ("", "ai.onnx"):
                if not onnx.defs.has(node.op_type, max_inclusive_version=version, domain=""):
                    raise UnsupportedOperatorError(
                        node.op_type, node.name or "(unnamed)", detail=f"not an ONNX operator at opset {version} ({path})"
                    )
            elif domain not in RUNTIME_DOMAINS:
                raise UnsupportedOperatorError(
                    node.op_type, node.name or "(unnamed)", domain, detail=f"custom domain no runtime implements ({path})"
                )


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)
