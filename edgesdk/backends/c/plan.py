"""From the static graph to what the C package is made of: TVM kernels (one PrimFunc per distinct op, shape
and attributes), the tensors the driver passes them (in one arena with a static memory plan, or in the
weights blob), and the calls in topological order.

Quantized weights are read as they are: MatMul(x, DequantizeLinear(uint4 codes, scale, zero point; axis 0,
blocks of 32)) becomes the int4 kernel of int4.py over codes packed for it; Gather(DequantizeLinear(... axis
1 ...), ids) gathers rows of codes and dequantizes only those. A DequantizeLinear anywhere else, or an op
with no lowering, is refused with its node named."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import UnsupportedOperatorError
from . import int4, ops

ALIGN = 64


@dataclass
class Tensor:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]
    storage: str  # "arena" | "weights"
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


@dataclass
class Plan:
    tensors: list[Tensor] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    kernels: dict[str, Any] = field(default_factory=dict)  # symbol -> PrimFunc
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)  # in the order of their offsets
    weights_bytes: int = 0
    arena_bytes: int = 0
    scratch_floats: int = 0  # the int4 driver's per-chunk output when M > 1
    op_counts: dict[str, int] = field(default_factory=dict)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _Builder:
    def __init__(self, options):
        self.options = options
        self.plan = Plan()
        self.index: dict[str, int] = {}  # value name -> tensor index
        self.alias: dict[str, str] = {}  # value name -> the value whose buffer it reinterprets
        self.kernel_keys: dict[str, str] = {}
        self.defined: dict[int, int] = {}  # arena tensor -> step that writes it first
        self.last_use: dict[int, int] = {}
        self._quantized: dict[str, Any] = {}
        self._consts: dict[str, np.ndarray | None] = {}

    def const(self, value) -> np.ndarray | None:
        """_const of value, read once (a weight read again for every use would be read from disk again)."""
        if value is None:
            return None
        if value.name not in self._consts:
            self._consts[value.name] = _const(value)
        return self._consts[value.name]

    def quantized(self, value):
        """_quantized_weight of value, once per value (a tied table is read by its Gather and its Gemm)."""
        if value is None:
            return None
        if value.name not in self._quantized:
            self._quantized[value.name] = _quantized_weight(value)
        return self._quantized[value.name]

    # -- tensors ---------------------------------------------------------------------------------------
    def weight(self, array: np.ndarray, name: str) -> int:
        array = np.ascontiguousarray(array)
        tensor = Tensor(name, array.dtype.name, tuple(array.shape), "weights", self.plan.weights_bytes)
        self.plan.weights.append(array)
        self.plan.weights_bytes = _align(self.plan.weights_bytes + array.nbytes)
        self.plan.tensors.append(tensor)
        return len(self.plan.tensors) - 1

    def value(self, value, step: int, defining: bool = False) -> int:
        """The arena tensor of a graph value (its alias root's buffer, reshaped)."""
        name = value.name
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

    def operand(self, value, step: int) -> int:
        """A node's input: a weights tensor when it is a constant, else its arena tensor."""
        const = self.const(value)
        if const is None:
            return self.value(value, step)
        if value.name not in self.index:
            self.index[value.name] = self.weight(const, value.name)
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


def _const(value) -> np.ndarray | None:
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant":
        return producer.attributes["value"].value.numpy()
    return None


def _quantized_weight(value):
    """(codes, scale, zero point, axis, block) when value is a DequantizeLinear of uint4/int4 constants."""
    node = value.producer() if value is not None else None
    if node is None or node.op_type != "DequantizeLinear":
        return None
    codes, scale = _const(node.inputs[0]), _const(node.inputs[1])
    zero = _const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if codes is None or scale is None or codes.dtype.name not in ("uint4", "int4"):
        return None
    if zero is None:
        zero = np.zeros(scale.shape, np.uint8 if codes.dtype.name == "uint4" else np.int8)
    axis = int(ops.attr(node, "axis", 1)) % codes.ndim
    block = int(ops.attr(node, "block_size", 0))
    if codes.dtype.name == "int4":  # signed codes: shift both to unsigned, the difference is the same
        codes, zero = codes.astype(np.int16) + 8, zero.astype(np.int16) + 8
    return codes, scale.astype(np.float32), zero, axis, block


def build(model, options) -> Plan:
    """The plan of a static onnx_ir model (static_graph.staticize)."""
    b = _Builder(options)
    graph = model.graph
    for value in graph.inputs:
        b.plan.inputs.append(b.value(value, -1, defining=True))
    for step, node in enumerate(graph):
        if node.op_type == "Constant" or (node.op_type == "DequantizeLinear" and b.quantized(node.outputs[0])):
            if node.op_type == "DequantizeLinear":
                _check_consumers(node)
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
            _int4_matmul(b, node, step, weight)
        elif node.op_type == "Gemm" and weight is not None:
            _int4_matmul(b, node, step, _gemm_as_matmul(node, weight))
        elif node.op_type == "Gather" and weight is not None:
            _int4_gather(b, node, step, weight)
        else:
            _generic(b, node, step)
    end = len(graph)
    for value in graph.outputs:
        b.plan.outputs.append(b.value(value, end))
    _place(b, end)
    b.plan.op_counts = dict(Counter(node.op_type for node in graph))
    return b.plan


def _check_consumers(node) -> None:
    for user, slot in node.outputs[0].uses():
        ok = (user.op_type in ("MatMul", "Gemm") and slot == 1) or (user.op_type == "Gather" and slot == 0)
        if not ok:
            raise UnsupportedOperatorError(node.op_type, node.name, detail=f"int4 weights read by {user.op_type} "
                                           f"'{user.name}' (the C backend reads them in MatMul, Gemm and Gather)")


def _int4_matmul(b: _Builder, node, step: int, weight) -> None:
    codes, scale, zero, axis, block = weight
    if axis != 0 or block != int4.BLOCK or codes.ndim != 2:
        raise UnsupportedOperatorError("MatMul", node.name, detail=f"int4 weights with axis {axis}, block {block} "
                                       f"(the C kernel takes blocks of {int4.BLOCK} along K)")
    k, n = codes.shape
    x, y = node.inputs[0], node.outputs[0]
    m = int(np.prod([int(d) for d in x.shape[:-1]]))
    layout = int4.layout_for(k, n, b.options.pack_rows, b.options.chunk_columns)
    packed = int4.pack(codes, scale, zero, layout)
    args = [b.operand(x, step)] + [b.weight(a, f"{node.name}.{part}") for a, part in
                                  zip(packed, ("codes", "scale", "scaled_zero"))]
    args.append(b.value(y, step, defining=True))
    symbol = b.kernel(f"int4 m={m} k={k} chunk={layout.chunk} rows={layout.rows}",
                      lambda s: int4.kernel(m, layout, s))
    if m > 1:
        b.plan.scratch_floats = max(b.plan.scratch_floats, m * layout.chunk)
    b.plan.calls.append(Call(node.name, symbol, args, {"m": m, "k": k, "n": n, "chunk": layout.chunk,
                                                       "rows": layout.rows}))


def _gemm_as_matmul(node, weight):
    """Gemm(x, Wᵀ) with W [N, K] blocked along K (a tied output layer reading the embedding table) as the
    MatMul weight [K, N] blocked along K."""
    codes, scale, zero, axis, block = weight
    plain = (ops.attr(node, "transA", 0) == 0 and ops.attr(node, "alpha", 1.0) == 1.0
             and (len(node.inputs) < 3 or node.inputs[2] is None))
    if not plain or ops.attr(node, "transB", 0) != 1 or axis != 1:
        raise UnsupportedOperatorError("Gemm", node.name, detail="int4 weights in a Gemm other than x·Wᵀ with W "
                                       "blocked along its rows (no bias, alpha 1)")
    return codes.T, scale.T, zero.T, 0, block


def _int4_gather(b: _Builder, node, step: int, weight) -> None:
    from tvm import te, tirx

    codes, scale, zero, axis, block = weight
    if axis != 1 or codes.ndim != 2 or int(ops.attr(node, "axis", 0)) != 0 or codes.shape[1] % block or block % 2:
        raise UnsupportedOperatorError("Gather", node.name, detail="int4 table not blocked along its rows' width")
    rows, width = codes.shape
    c = codes.astype(np.uint8).reshape(rows, width // 2, 2)
    table = (c[:, :, 0] | (c[:, :, 1] << 4)).astype(np.uint8)
    ids, out = node.inputs[1], node.outputs[0]
    id_shape = tuple(int(d) for d in ids.shape)
    args = [b.operand(ids, step), b.weight(table, f"{node.name}.codes"), b.weight(scale, f"{node.name}.scale"),
            b.weight(scale * zero.astype(np.float32), f"{node.name}.scaled_zero"), b.value(out, step, defining=True)]

    def make(symbol):
        idx = te.placeholder(id_shape, ids.dtype.numpy().name, name="ids")
        t = te.placeholder(table.shape, "uint8", name="codes")
        s = te.placeholder(scale.shape, "float32", name="scale")
        sz = te.placeholder(scale.shape, "float32", name="scaled_zero")

        def element(*i):
            row = tirx.floormod(idx[i[:-1]].astype("int32"), rows)
            d = i[-1]
            byte = t[row, d // 2]
            code = ((byte >> ((d % 2) * 4).astype("uint8")) & tirx.const(15, "uint8")).astype("float32")
            return code * s[row, d // block] - sz[row, d // block]

        result = te.compute((*id_shape, width), element, name="gather_int4")
        return te.create_prim_func([idx, t, s, sz, result]).with_attr("global_symbol", symbol)

    symbol = b.kernel(f"gather_int4 ids={id_shape}:{ids.dtype} table={table.shape} block={block}", make)
    b.plan.calls.append(Call(node.name, symbol, args))


class _Context:
    """What a lowering may add to its kernel: constants it reads from the weights blob."""

    def __init__(self, builder: _Builder, node):
        self.builder, self.node = builder, node
        self.placeholders: list = []
        self.tensors: list[int] = []
        self.signature: list[str] = []

    def constant(self, array: np.ndarray, name: str):
        from tvm import te

        self.placeholders.append(te.placeholder(array.shape, array.dtype.name, name=name))
        self.tensors.append(self.builder.weight(array, f"{self.node.name}.{name}"))
        self.signature.append(f"{name}:{array.dtype}{array.shape}")
        return self.placeholders[-1]


def _generic(b: _Builder, node, step: int) -> None:
    from tvm import te

    lowering = ops.LOWERINGS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if lowering is None:
        raise UnsupportedOperatorError(node.op_type, node.name, node.domain if node.domain not in ("", "ai.onnx") else "",
                                       detail="no C lowering")
    consts = [b.const(v) for v in node.inputs]
    key_parts = [node.op_type, repr(sorted((k, repr(a.value)) for k, a in node.attributes.items()))]
    args: list[int] = []
    specs: list[tuple[str, Any]] = []  # ("placeholder", shape/dtype) | ("scalar", array) | ("none", None)
    for value, const in zip(node.inputs, consts):
        if value is None:
            specs.append(("none", None))
            key_parts.append("-")
        elif const is not None and const.size <= 1:
            specs.append(("scalar", const))
            key_parts.append(f"={const.dtype}{const.shape}:{const.reshape(-1).tolist()}")
        elif const is not None:
            specs.append(("constant", const))
            key_parts.append(f"c{const.dtype}{const.shape}")
        else:
            shape = tuple(int(d) for d in value.shape)
            specs.append(("placeholder", (shape, value.dtype.numpy().name)))
            key_parts.append(f"{value.dtype.numpy().name}{shape}")
    # inputs that are values or large constants are arguments, in order
    for value, (kind, spec) in zip(node.inputs, specs):
        if kind == "placeholder":
            args.append(b.value(value, step))
        elif kind == "constant":
            args.append(b.operand(value, step))
    outputs = [o for o in node.outputs if o is not None and o.name]
    extra = [o.name for o in outputs[1:] if o.uses() or o in node.graph.outputs]
    if extra:
        raise UnsupportedOperatorError(node.op_type, node.name, detail=f"output {extra[0]} is read (the C "
                                       "lowering computes the first output only)")
    context = _Context(b, node)
    placeholders = []
    tensors = []
    for i, (kind, spec) in enumerate(specs):
        if kind == "none":
            tensors.append(None)
        elif kind == "scalar":
            tensors.append(ops.scalar(spec))
        else:
            shape, dtype = (spec.shape, spec.dtype.name) if kind == "constant" else spec
            placeholders.append(te.placeholder(shape, dtype, name=f"in{i}"))
            tensors.append(placeholders[-1])
    try:
        result = lowering(node, tensors, consts, context)[0]
    except ValueError as exc:
        raise UnsupportedOperatorError(node.op_type, node.name, detail=str(exc)) from None
    dtype = outputs[0].dtype.numpy().name
    if result.dtype != dtype:
        from tvm import topi

        result = topi.cast(result, dtype)
    # Built for every node (a lowering may add constants of its own); nodes of one key share one kernel.
    key = "|".join([*key_parts, "->" + dtype, *context.signature])
    def make(symbol):
        func = te.create_prim_func([*placeholders, *context.placeholders, result]).with_attr("global_symbol", symbol)
        schedule = ops.SCHEDULES.get(node.op_type)
        return schedule(func) if schedule else func

    symbol = b.kernel(key, make)
    args += context.tensors
    args.append(b.value(outputs[0], step, defining=True))
    b.plan.calls.append(Call(node.name, symbol, args))


def _place(b: _Builder, end: int) -> None:
    """Offsets in the arena: a buffer reuses the space of buffers whose last reader came before its writer."""
    roots = sorted({b._root(i) for i, t in enumerate(b.plan.tensors) if t.storage == "arena"},
                   key=lambda r: -b.plan.tensors[r].nbytes)
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for r in roots:
        t = b.plan.tensors[r]
        first, last = b.defined.get(r, -1), b.last_use.get(r, end)
        if r in b.plan.inputs or r in b.plan.outputs:
            first, last = -1, end
        size = _align(t.nbytes)
        offset = 0
        changed = True  # until no live buffer overlaps: moving past one block can land on another
        while changed:
            changed = False
            for o, s, f, l in placed:
                if f <= last and first <= l and offset < o + s and o < offset + size:
                    offset, changed = _align(o + s), True
        placed.append((offset, size, first, last))
        t.offset = offset
        b.plan.arena_bytes = max(b.plan.arena_bytes, offset + size)
    for i, t in enumerate(b.plan.tensors):
        if t.storage == "arena":
            t.offset = b.plan.tensors[b._root(i)].offset
