"""What is in a model or artifact: operators, sizes by data type, and which tensors are quantized how."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import onnx_ir as ir

from .artifact import MANIFEST, Artifact
from .graph import Graph
from .importers.onnx_file import load_onnx


def inspect(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    report: dict[str, Any] = {"path": str(path)}
    if path.is_dir() and (path / MANIFEST).exists():
        artifact = Artifact.load(path)
        m = artifact.manifest
        report["artifact"] = {k: m.get(k) for k in ("format", "runtime", "target", "model", "recipe", "accuracy", "ort_kernels")}
        report["artifact"]["files"] = {k: v["bytes"] for k, v in m["files"].items()}
        path = artifact.model_path
    graph = load_onnx(path)
    report |= describe(graph)
    report["file_bytes"] = path.stat().st_size
    return report


def describe(graph: Graph) -> dict[str, Any]:
    g = graph.model.graph
    by_dtype: dict[str, int] = collections.Counter()
    for value in g.initializers.values():
        if value.const_value is not None:
            by_dtype[str(value.const_value.dtype.name).lower()] += value.const_value.nbytes
    return {
        "opsets": dict(graph.model.opset_imports),
        "inputs": [s.to_json() for s in graph.inputs],
        "outputs": [s.to_json() for s in graph.outputs],
        "nodes": sum(1 for _ in g.all_nodes()),
        "ops": dict(sorted(graph.op_counts().items(), key=lambda kv: -kv[1])),
        "weight_bytes_by_dtype": dict(by_dtype),
        "quantized": quantized_tensors(g),
    }


def quantized_tensors(graph: ir.Graph) -> dict[str, list[dict[str, Any]]]:
    """Weights (constant integer tensors) and activations (QuantizeLinear of a runtime value)."""
    weights, activations, kernels = [], [], []
    for node in graph.all_nodes():
        op = node.op_type
        if op == "DequantizeLinear" and node.inputs[0].const_value is not None:
            data = node.inputs[0]
            block = node.attributes.get_int("block_size", 0)
            scale = node.inputs[1].const_value
            granularity = (
                f"block {block} along axis {node.attributes.get_int('axis', 1)}" if block
                else ("per-tensor" if scale is None or scale.size == 1 else f"per-channel axis {node.attributes.get_int('axis', 1)}")
            )
            weights.append({"tensor": data.name, "dtype": data.dtype.name.lower(), "shape": list(data.shape), "granularity": granularity})
        elif op == "QuantizeLinear" and node.inputs[0].const_value is None:
            zp = node.inputs[2] if len(node.inputs) > 2 else None
            scale = node.inputs[1].const_value
            activations.append({
                "tensor": node.inputs[0].name,
                "dtype": zp.dtype.name.lower() if zp is not None and zp.dtype else "uint8",
                "scale": float(scale.numpy().reshape(-1)[0]) if scale is not None else None,
            })
        elif op == "Gather" and node.inputs[0].const_value is not None and node.inputs[0].dtype == ir.DataType.INT8:
            # an ORT-lowered int8 embedding: rows are gathered, then scaled
            data = node.inputs[0]
            weights.append({"tensor": data.name, "dtype": "int8", "shape": list(data.shape), "granularity": "per-row (gathered rows scaled)"})
        elif op == "DynamicQuantizeLinear":
            activations.append({"tensor": node.inputs[0].name, "dtype": "uint8", "scale": "dynamic"})
        elif node.domain == "com.microsoft" and op in ("MatMulNBits", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "GatherBlockQuantized"):
            entry = {"node": node.name, "kernel": op, "weight": node.inputs[1].name if op != "GatherBlockQuantized" else node.inputs[0].name}
            if op in ("MatMulNBits", "GatherBlockQuantized"):
                entry |= {"bits": node.attributes.get_int("bits", 4), "block_size": node.attributes.get_int("block_size", 0)}
            kernels.append(entry)
    return {"weights": weights, "activations": activations, "kernels": kernels}


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['path']}"]
    if "artifact" in report:
        a = report["artifact"]
        lines.append(f"  artifact: format {a['format']} for target {a['target']}, recipe {a['recipe']['name']} {a['recipe']['options']}")
        for name, size in a["files"].items():
            lines.append(f"    {name}: {size / 1e6:.2f} MB")
        for name, m in ((a.get("accuracy") or {}).get("outputs") or {}).items():
            lines.append(f"    accuracy at export, {name}: cosine mean {m['cosine_mean']:.5f} min {m['cosine_min']:.5f}")
    lines.append(f"  opsets: {report['opsets']}; {report['nodes']} nodes; file {report['file_bytes'] / 1e6:.2f} MB")
    for kind in ("inputs", "outputs"):
        for s in report[kind]:
            lines.append(f"  {kind[:-1]:6s} {s['name']}: {s['dtype']}{s['shape']}")
    lines.append("  operators: " + ", ".join(f"{op}×{n}" for op, n in report["ops"].items()))
    lines.append("  weights by dtype: " + ", ".join(f"{t} {b / 1e6:.2f} MB" for t, b in report["weight_bytes_by_dtype"].items()))
    q = report["quantized"]
    groups = collections.Counter((w["dtype"], w["granularity"]) for w in q["weights"])
    for (dtype, gran), n in groups.items():
        lines.append(f"  quantized weights: {n} × {dtype} {gran}")
    kernels = collections.Counter(k["kernel"] for k in q["kernels"])
    for kernel, n in kernels.items():
        lines.append(f"  fused kernels: {n} × {kernel}")
    if q["activations"]:
        static = sum(1 for a in q["activations"] if a["scale"] != "dynamic")
        lines.append(f"  quantized activations: {static} static, {len(q['activations']) - static} dynamic")
    if not (q["weights"] or q["kernels"] or q["activations"]):
        lines.append("  not quantized (float)")
    return "\n".join(lines)
