"""From the static graphs to what the C package is made of: TVM kernels (one PrimFunc per distinct op, shape
and attributes), the tensors the driver passes them (in one arena with a static memory plan, in the weights
blob, or in the state that lives across calls), and, per entry point, the calls in topological order.

A package has one entry point per static graph: one ("run") for most models; a causal LM has two, "prefill"
(a chunk of tokens) and "decode" (one token), built from the same graph with two input shapes. They share
the weights (a weight is stored once, whichever entries read it), the kernels and the arena (one entry runs
at a time), and the KV cache: a graph input that a ScatterND updates in place (the static LM form writes the
call's keys and values into its cache that way) is state, one buffer that its output (present.N) is a view
of, kept between calls.

This module walks each graph and plans the arena; builder.py keeps the tensors, weights, kernels and state
(constants read once), quantized.py lowers the int4 weights as codes, nodes.py every other node. A
DequantizeLinear anywhere else, or an op with no lowering, is refused with its node named."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...errors import UnsupportedOperatorError
from . import nodes, ops, quantized
from .builder import Builder, Plan, align


def build(entries: dict[str, Any], options) -> Plan:
    """The plan of static onnx_ir models (static_graph.staticize), one entry point each: clones of one graph
    with different input shapes share their weights and their state."""
    b = Builder(options)
    for name, model in entries.items():
        _build_entry(b, name, model.graph)
    b.plan.op_counts = dict(Counter(node.op_type for node in next(iter(entries.values())).graph))
    return b.plan


def _build_entry(b: Builder, name: str, graph) -> None:
    entry = b.begin(name, graph)
    for value in graph.inputs:
        entry.inputs.append(b.value(value, -1, defining=True))
    for step, node in enumerate(graph):
        if node.op_type == "Constant" or (node.op_type == "DequantizeLinear" and b.quantized(node.outputs[0])):
            if node.op_type == "DequantizeLinear":
                quantized.check_consumers(node)
            continue
        if node.op_type in ops.ALIASES:
            source = node.inputs[0]
            if b.const(source) is not None:
                raise UnsupportedOperatorError(node.op_type, node.name, detail="a reshape of a constant left unfolded")
            b.alias[node.outputs[0].name] = source.name
            b.value(source, step)
            b.value(node.outputs[0], step, defining=True)
            continue
        weight = {"MatMul": lambda: b.quantized(node.inputs[1]), "Gemm": lambda: b.quantized(node.inputs[1]),
                  "Gather": lambda: b.quantized(node.inputs[0])}.get(node.op_type, lambda: None)()
        if node.op_type == "MatMul" and weight is not None:
            quantized.int4_matmul(b, node, step, weight)
        elif node.op_type == "Gemm" and weight is not None:
            quantized.int4_matmul(b, node, step, quantized.gemm_as_matmul(node, weight))
        elif node.op_type == "Gather" and weight is not None:
            quantized.int4_gather(b, node, step, weight)
        elif node.op_type == "ScatterND":
            nodes.scatter_in_place(b, node, step)
        else:
            nodes.generic(b, node, step)
    end = len(graph)
    for value in graph.outputs:
        entry.outputs.append(b.value(value, end))
    _place(b, end)


def _place(b: Builder, end: int) -> None:
    """Offsets in the arena for the entry just built: a buffer reuses the space of buffers whose last reader
    came before its writer. Entries run one at a time, so each starts from an empty arena."""
    mine = sorted(set(b.index.values()))
    roots = sorted({r for r in (b._root(i) for i in mine) if b.plan.tensors[r].storage == "arena"},
                   key=lambda r: -b.plan.tensors[r].nbytes)
    entry = b.entry
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for r in roots:
        t = b.plan.tensors[r]
        first, last = b.defined.get(r, -1), b.last_use.get(r, end)
        if r in entry.inputs or r in entry.outputs:
            first, last = -1, end
        size = align(t.nbytes)
        offset = 0
        changed = True  # until no live buffer overlaps: moving past one block can land on another
        while changed:
            changed = False
            for o, s, f, l in placed:
                if f <= last and first <= l and offset < o + s and o < offset + size:
                    offset, changed = align(o + s), True
        placed.append((offset, size, first, last))
        t.offset = offset
        entry.arena_bytes = max(entry.arena_bytes, offset + size)
    b.plan.arena_bytes = max(b.plan.arena_bytes, entry.arena_bytes)
    for i in mine:
        t, root = b.plan.tensors[i], b.plan.tensors[b._root(i)]
        t.storage, t.offset = root.storage, root.offset  # a view of the state is state
