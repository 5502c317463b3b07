"""Small helpers to add constants and nodes to an onnx_ir graph with unique names."""

from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir


class GraphEditor:
    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self._taken = {v.name for v in graph.initializers.values()} | {v.name for v in graph.inputs}
        self._taken |= {o.name for n in graph.all_nodes() for o in n.outputs}
        self._taken |= {n.name for n in graph.all_nodes() if n.name}
        self._counter = itertools.count()

    def name(self, hint: str) -> str:
        hint = hint or "edgesdk"
        candidate = hint
        while candidate in self._taken:
            candidate = f"{hint}_{next(self._counter)}"
        self._taken.add(candidate)
        return candidate

    def constant(self, hint: str, array: np.ndarray | ir.LazyTensor, dtype: ir.DataType | None = None) -> ir.Value:
        """A new initializer; a LazyTensor is computed whenever its values are read, never kept."""
        name = self.name(hint)
        if isinstance(array, ir.LazyTensor):
            tensor = array
            tensor.name = name
        else:
            tensor = ir.tensor(array, dtype=dtype, name=name)
        value = ir.Value(name=name, shape=ir.Shape(tensor.shape), type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.graph.register_initializer(value)
        return value

    def add(self, op_type: str, inputs, attributes=None, *, hint: str, domain: str = "", outputs: int = 1) -> ir.Node:
        """Append a node; the caller sorts the graph once at the end of its pass."""
        outs = [ir.Value(name=self.name(f"{hint}_out{i}" if outputs > 1 else f"{hint}_out")) for i in range(outputs)]
        node = ir.node(op_type, inputs, attributes or {}, domain=domain, outputs=outs, name=self.name(hint))
        self.graph.append(node)
        return node

    def finish(self) -> None:
        """Drop what the pass orphaned and restore topological order."""
        self.graph.sort()
        _remove_unused(self.graph)


def _remove_unused(graph: ir.Graph) -> None:
    # Initializers nobody reads any more (the float weights a pass replaced) would bloat the file.
    for name, value in list(graph.initializers.items()):
        if not value.uses() and not value.is_graph_output():
            del graph.initializers[name]
