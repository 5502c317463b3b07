"""What an ONNX model holds: operators, sizes by data type, and which tensors are quantized how."""

from __future__ import annotations

import collections
import re
from typing import Any

import onnx_ir as ir

from ...graph import Graph

ORT_KERNELS = ("MatMulNBits", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "GatherBlockQuantized")


def describe_graph(graph: Graph) -> dict[str, Any]:
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
            axis = node.attributes.get_int("axis", 1)
            granularity = (f"block {block} along axis {axis}" if block
                           else ("per-tensor" if scale is None or scale.size == 1 else f"per-channel axis {axis}"))
            weights.append({"tensor": data.name, "dtype": data.dtype.name.lower(), "shape": list(data.shape),
                            "granularity": granularity})
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
            weights.append({"tensor": data.name, "dtype": "int8", "shape": list(data.shape),
                            "granularity": "per-row (gathered rows scaled)"})
        elif op == "DynamicQuantizeLinear":
            activations.append({"tensor": node.inputs[0].name, "dtype": "uint8", "scale": "dynamic"})
        elif node.domain == "com.microsoft" and op in ORT_KERNELS:
            weight = node.inputs[0] if op == "GatherBlockQuantized" else node.inputs[1]
            entry = {"node": node.name, "kernel": op, "weight": weight.name}
            if op in ("MatMulNBits", "GatherBlockQuantized"):
                entry |= {"bits": node.attributes.get_int("bits", 4), "block_size": node.attributes.get_int("block_size", 0)}
            kernels.append(entry)
    return {"weights": weights, "activations": activations, "kernels": kernels}


def _tensor_lines(kind: str, specs: list[dict[str, Any]]) -> list[str]:
    """One line per tensor; tensors that differ only by a layer number (an LM's KV cache) share one line."""
    groups: dict[tuple, list[str]] = {}
    for s in specs:
        key = (re.sub(r"\.\d+\.", ".N.", s["name"]), s["dtype"], str(s["shape"]))
        groups.setdefault(key, []).append(s["name"])
    lines = []
    for (pattern, dtype, shape), names in groups.items():
        label = names[0] if len(names) == 1 else f"{pattern} ({len(names)} tensors, N = layer)"
        lines.append(f"  {kind:6s} {label}: {dtype}{shape}")
    return lines


def report_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"  opsets: {report['opsets']}; {report['nodes']} nodes"]
    for kind in ("inputs", "outputs"):
        lines += _tensor_lines(kind[:-1], report[kind])
    lines.append("  operators: " + ", ".join(f"{op}×{n}" for op, n in report["ops"].items()))
    lines.append("  weights by dtype: " + ", ".join(f"{t} {b / 1e6:.2f} MB" for t, b in report["weight_bytes_by_dtype"].items()))
    q = report["quantized"]
    groups = collections.Counter((w["dtype"], w["granularity"]) for w in q["weights"])
    for (dtype, gran), n in groups.items():
        lines.append(f"  quantized weights: {n} × {dtype} {gran}")
    for kernel, n in collections.Counter(k["kernel"] for k in q["kernels"]).items():
        lines.append(f"  fused kernels: {n} × {kernel}")
    if q["activations"]:
        static = sum(1 for a in q["activations"] if a["scale"] != "dynamic")
        lines.append(f"  quantized activations: {static} static, {len(q['activations']) - static} dynamic")
    if not (q["weights"] or q["kernels"] or q["activations"]):
        lines.append("  not quantized (float)")
    return lines
