"""The bookkeeping of a C package's plan: its tensors (arena, weights blob, state), the entry points' calls, the
kernels by key, and what the graph's constants and quantized weights are — each read once, whichever entry
point reads them (entries are clones of one graph that share their constant tensors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import UnsupportedOperatorError
from . import ops

ALIGN = 64


@dataclass
class Tensor:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]
    storage: str  # "arena" | "weights" | "state"
    offset: int = 0
    root: int | None = None  # an alias (Reshape...) shares this tensor's buffer

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Call:
    node: str
    kernel: str  # the generated function's symbol
    args: list[int]  # tensor indices, inputs then outputs
    int4: dict[str, int] | None = None  # {m, k, n, chunk, rows} for the chunked int4 matmul
    op: str = ""  # what the call computes, for the harness's --profile (the node's op type; "… int4" for weights read as codes)


@dataclass
class Entry:
    name: str
    calls: list[Call] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    arena_bytes: int = 0


@dataclass
class Plan:
    tensors: list[Tensor] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    kernels: dict[str, Any] = field(default_factory=dict)  # symbol -> PrimFunc
    weights: list[np.ndarray] = field(default_factory=list)  # in the order of their offsets
    weights_bytes: int = 0
    arena_bytes: int = 0  # the largest entry's
    state_bytes: int = 0
    scratch_floats: int = 0  # the int4 driver's per-chunk output when M > 1
    op_counts: dict[str, int] = field(default_factory=dict)  # the first entry's graph

    @property
    def calls(self) -> list[Call]:
        return [call for entry in self.entries for call in entry.calls]


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Builder:
    def __init__(self, options):
        self.options = options
        self.plan = Plan()
        self.kernel_keys: dict[str, str] = {}
        self.stored: dict[Any, tuple[Any, list[int]]] = {}  # a weight's source -> its tensors, for every entry
        self.state: dict[str, int] = {}  # graph input name -> its state tensor
        # what a constant or a quantized weight is, by the tensor objects that hold it (shared by the clones of
        # one graph, so the second entry point reads nothing again); the sources are kept so ids stay unique
        self._consts: dict[int, tuple[Any, np.ndarray]] = {}
        self._quantized: dict[tuple, tuple[Any, QuantizedWeight | None]] = {}

    def begin(self, name: str, graph) -> Entry:
        """A new entry point: values are named per graph, so what maps names to tensors starts afresh."""
        self.entry = Entry(name)
        self.plan.entries.append(self.entry)
        self.index: dict[str, int] = {}  # value name -> tensor index
        self.alias: dict[str, str] = {}  # value name -> the value whose buffer it reinterprets
        self.defined: dict[int, int] = {}  # arena tensor -> step that writes it first
        self.last_use: dict[int, int] = {}
        self.in_place = in_place_inputs(graph)
        return self.entry

    def store(self, source, make, form: str = "") -> list[int]:
        """The weight tensors made from ``source`` (a constant of the graph: entries built from clones of one
        graph share it) in one ``form``, stored the first time any entry asks: ``make()`` -> [(array, name)]."""
        key = (id(source), form)
        if key not in self.stored:
            self.stored[key] = (source, [self.weight(array, name) for array, name in make()])  # source kept: ids stay unique
        return self.stored[key][1]

    def const(self, value) -> np.ndarray | None:
        """value's constant as an array (None when it is not one), read once."""
        source = const_source(value)
        if source is None:
            return None
        if id(source) not in self._consts:
            self._consts[id(source)] = (source, source.numpy())
        return self._consts[id(source)][1]

    def quantized(self, value) -> QuantizedWeight | None:
        """quantized_weight of value, read once (a tied table is read by its Gather and its Gemm, and every
        entry point reads it)."""
        node = value.producer() if value is not None else None
        if node is None or node.op_type != "DequantizeLinear":
            return None
        sources = tuple(const_source(v) for v in node.inputs)
        key = (*map(id, sources), ops.attr(node, "axis", 1), ops.attr(node, "block_size", 0))
        if key not in self._quantized:
            self._quantized[key] = (sources, quantized_weight(value))
        return self._quantized[key][1]

    # -- tensors ---------------------------------------------------------------------------------------
    def weight(self, array: np.ndarray, name: str) -> int:
        array = np.ascontiguousarray(array)
        tensor = Tensor(name, array.dtype.name, tuple(array.shape), "weights", self.plan.weights_bytes)
        self.plan.weights.append(array)
        self.plan.weights_bytes = align(self.plan.weights_bytes + array.nbytes)
        self.plan.tensors.append(tensor)
        return len(self.plan.tensors) - 1

    def value(self, value, step: int, defining: bool = False) -> int:
        """The arena tensor of a graph value (its alias root's buffer, reshaped), or its state tensor."""
        name = value.name
        if name not in self.index and name in self.in_place:
            self.index[name] = self._state(value)
        if name not in self.index:
            shape = tuple(int(d) for d in value.shape)
            source = self.index[self.alias[name]] if name in self.alias else None  # _root walks a chain of views
            self.plan.tensors.append(Tensor(name, value.dtype.numpy().name, shape, "arena", root=source))
            self.index[name] = len(self.plan.tensors) - 1
        i = self.index[name]
        root = self._root(i)
        if defining:
            self.defined.setdefault(root, step)
        self.last_use[root] = max(self.last_use.get(root, step), step)
        return i

    def _state(self, value) -> int:
        shape, dtype = tuple(int(d) for d in value.shape), value.dtype.numpy().name
        if value.name not in self.state:
            self.plan.tensors.append(Tensor(value.name, dtype, shape, "state", self.plan.state_bytes))
            self.state[value.name] = len(self.plan.tensors) - 1
            self.plan.state_bytes = align(self.plan.state_bytes + self.plan.tensors[-1].nbytes)
        kept = self.plan.tensors[self.state[value.name]]
        if (kept.shape, kept.dtype) != (shape, dtype):
            raise UnsupportedOperatorError("ScatterND", value.name, detail=f"state '{value.name}' is {dtype}{list(shape)} "
                                           f"here and {kept.dtype}{list(kept.shape)} in entry '{self.plan.entries[0].name}'")
        return self.state[value.name]

    def operand(self, value, step: int) -> int:
        """A node's input: a weights tensor when it is a constant, else its arena tensor."""
        const = self.const(value)
        if const is None:
            return self.value(value, step)
        if value.name not in self.index:
            self.index[value.name] = self.store(const_source(value), lambda: [(const, value.name)])[0]
        return self.index[value.name]

    def _root(self, i: int) -> int:
        while self.plan.tensors[i].root is not None:
            i = self.plan.tensors[i].root
        return i

    # -- kernels ---------------------------------------------------------------------------------------
    def kernel(self, key: str, make) -> str:
        if key not in self.kernel_keys:
            symbol = f"k{len(self.kernel_keys)}"
            self.kernel_keys[key] = symbol
            self.plan.kernels[symbol] = make(symbol)
        return self.kernel_keys[key]


def const_source(value):
    """The tensor object holding value's constant (shared by clones of a graph), else None."""
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant":
        return producer.attributes["value"].value
    return None


def const_of(value) -> np.ndarray | None:
    source = const_source(value)
    return None if source is None else source.numpy()


@dataclass
class QuantizedWeight:
    codes: np.ndarray  # unsigned codes (int4 ones shifted by 8, and their zero points with them)
    scale: np.ndarray
    zero: np.ndarray
    axis: int
    block: int
    source: Any  # the codes' tensor object: what the packed forms are stored under

    def transposed(self) -> QuantizedWeight:
        return QuantizedWeight(self.codes.T, self.scale.T, self.zero.T, 1 - self.axis, self.block, self.source)

def in_place_inputs(graph) -> set[str]:
    """Graph inputs a ScatterND updates in place: its data, read by nothing else (a static KV cache)."""
    inputs = {value.name for value in graph.inputs}
    return {node.inputs[0].name for node in graph
            if node.op_type == "ScatterND" and node.inputs[0] is not None and node.inputs[0].name in inputs
            and len(node.inputs[0].uses()) == 1 and ops.attr(node, "reduction", "none") == "none"}

def quantized_weight(value) -> QuantizedWeight | None:
    """The codes, scale, zero point, axis and block when value is a DequantizeLinear of uint4/int4 constants."""
    node = value.producer() if value is not None else None
    if node is None or node.op_type != "DequantizeLinear":
        return None
    codes, scale = const_of(node.inputs[0]), const_of(node.inputs[1])
    zero = const_of(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if codes is None or scale is None or codes.dtype.name not in ("uint4", "int4"):
        return None
    if zero is None:
        zero = np.zeros(scale.shape, np.uint8 if codes.dtype.name == "uint4" else np.int8)
    axis = int(ops.attr(node, "axis", 1)) % codes.ndim
    block = int(ops.attr(node, "block_size", 0))
    if codes.dtype.name == "int4":  # signed codes: shift both to unsigned, the difference is the same
        codes, zero = codes.astype(np.int16) + 8, zero.astype(np.int16) + 8
    return QuantizedWeight(codes, scale.astype(np.float32), zero, axis, block, const_source(node.inputs[0]))

