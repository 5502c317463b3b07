"""ONNX ops as TVM TE computations (mostly TOPI's), one per node of the static graph.

A lowering takes (node, inputs, consts, ctx): inputs are TE tensors (placeholders for buffers, inlined
computes for scalar constants), ``consts`` the constant inputs as numpy arrays (None where not constant),
``ctx.constant(array)`` a placeholder for a constant the kernel reads (stored with the weights). It returns
the node's output tensors. Ops that only reinterpret a buffer (Reshape, Squeeze, Unsqueeze, Flatten, Identity)
are no kernels at all: ALIASES. Quantized weights (a DequantizeLinear of constants feeding MatMul or Gather)
are matched in plan.py before these run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ALIASES = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
LOWERINGS: dict[str, Callable] = {}
SCHEDULES: dict[str, Callable] = {}  # op type -> PrimFunc -> scheduled PrimFunc (else TVM's default loop nest)


def register(*op_types: str):
    def wrap(fn):
        for op in op_types:
            LOWERINGS[op] = fn
        return fn

    return wrap


def attr(node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _axes(node, consts, rank: int, default_all: bool = True) -> list[int] | None:
    axes = consts[1] if len(consts) > 1 and consts[1] is not None else attr(node, "axes")
    if axes is None:
        return list(range(rank)) if default_all else None
    return sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))


def _elementwise(name: str):
    from tvm import topi

    return {"Add": topi.add, "Sub": topi.subtract, "Mul": topi.multiply, "Div": topi.divide,
            "Pow": topi.power, "Max": topi.maximum, "Min": topi.minimum, "And": topi.logical_and,
            "Or": topi.logical_or, "Equal": topi.equal, "Less": topi.less, "Greater": topi.greater,
            "LessOrEqual": topi.less_equal, "GreaterOrEqual": topi.greater_equal}[name]


@register("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "And", "Or", "Equal", "Less", "Greater",
          "LessOrEqual", "GreaterOrEqual")
def binary(node, inputs, consts, ctx):
    result = inputs[0]
    for other in inputs[1:]:
        result = _elementwise(node.op_type)(result, other)
    return [result]


@register("Erf", "Tanh", "Sqrt", "Exp", "Log", "Neg", "Abs", "Sigmoid", "Sin", "Cos", "IsNaN", "Not", "Reciprocal")
def unary(node, inputs, consts, ctx):
    from tvm import topi

    fn = {"Erf": topi.erf, "Tanh": topi.tanh, "Sqrt": topi.sqrt, "Exp": topi.exp, "Log": topi.log,
          "Neg": topi.negative, "Abs": topi.abs, "Sigmoid": topi.sigmoid, "Sin": topi.sin, "Cos": topi.cos,
          "IsNaN": topi.isnan, "Not": topi.logical_not,
          "Reciprocal": lambda x: topi.divide(1.0, x)}[node.op_type]
    return [fn(inputs[0])]


@register("Relu")
def relu(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.nn.relu(inputs[0])]


@register("Gelu")
def gelu(node, inputs, consts, ctx):
    from tvm import topi

    x = inputs[0]
    if attr(node, "approximate", "none") == "tanh":
        inner = topi.multiply(topi.add(x, topi.multiply(0.044715, topi.power(x, 3.0))), float(np.sqrt(2 / np.pi)))
        return [topi.multiply(topi.multiply(x, 0.5), topi.add(topi.tanh(inner), 1.0))]
    return [topi.multiply(topi.multiply(x, 0.5), topi.add(topi.erf(topi.multiply(x, float(1 / np.sqrt(2)))), 1.0))]


@register("Cast")
def cast(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.cast(inputs[0], node.outputs[0].dtype.numpy().name)]


@register("Where")
def where(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.where(*inputs)]


@register("Softmax")
def softmax(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.nn.softmax(inputs[0], axis=int(attr(node, "axis", -1)))]


@register("LayerNormalization")
def layer_norm(node, inputs, consts, ctx):
    from tvm import topi

    x, gamma = inputs[0], inputs[1]
    rank = len(x.shape)
    axis = int(attr(node, "axis", -1)) % rank
    beta = inputs[2] if len(inputs) > 2 and inputs[2] is not None else topi.full_like(gamma, 0.0)
    return [topi.nn.layer_norm(x, gamma, beta, axis=list(range(axis, rank)), epsilon=float(attr(node, "epsilon", 1e-5)))]


@register("MatMul")
def matmul(node, inputs, consts, ctx):
    """numpy matmul semantics: batch dimensions broadcast, a 2-d operand has none."""
    from tvm import te

    a, b = inputs
    ra, rb = len(a.shape), len(b.shape)
    if ra < 2 or rb < 2:
        raise ValueError("MatMul with a 1-d operand")
    batch = [int(d) for d in np.broadcast_shapes(tuple(int(x) for x in a.shape[:-2]), tuple(int(x) for x in b.shape[:-2]))]
    m, k, n = int(a.shape[-2]), int(a.shape[-1]), int(b.shape[-1])
    reduce_k = te.reduce_axis((0, k), name="k")

    def index(t, batch_idx, row, col):
        extra = len(t.shape) - 2
        own = batch_idx[len(batch_idx) - extra:] if extra else []
        own = [0 if int(t.shape[i]) == 1 else own[i] for i in range(extra)]
        return t[(*own, row, col)]

    return [te.compute((*batch, m, n), lambda *idx: te.sum(index(a, idx[:-2], idx[-2], reduce_k)
                                                           * index(b, idx[:-2], reduce_k, idx[-1]), axis=reduce_k),
                       name="matmul")]


def schedule_matmul(func):
    """A row of the output accumulated in a buffer with k outside the columns: the innermost loop streams a
    contiguous row of the right operand (what a C compiler vectorizes), not a column of it."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    block = sch.get_sblock("matmul")
    m, n, k = sch.get_loops(block)[-3:]
    sch.cache_write(block, 0, "global")
    sch.reorder(k, n)
    sch.reverse_compute_at(sch.get_sblock("matmul_global"), m)
    sch.decompose_reduction(block, k)
    return sch.mod["main"]


SCHEDULES["MatMul"] = schedule_matmul


@register("Transpose")
def transpose(node, inputs, consts, ctx):
    from tvm import topi

    perm = attr(node, "perm")
    return [topi.transpose(inputs[0], None if perm is None else [int(p) for p in perm])]


@register("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")
def reduce(node, inputs, consts, ctx):
    from tvm import topi

    x = inputs[0]
    axes = _axes(node, consts, len(x.shape), default_all=not attr(node, "noop_with_empty_axes", 0))
    if axes is None:
        return [topi.identity(x)]
    fn = {"ReduceSum": topi.sum, "ReduceMax": topi.max, "ReduceMin": topi.min}.get(node.op_type)
    if fn is None:  # ReduceMean: the sum over the count
        count = int(np.prod([int(x.shape[a]) for a in axes]))
        return [topi.divide(topi.sum(x, axis=axes, keepdims=bool(attr(node, "keepdims", 1))), float(count))]
    return [fn(x, axis=axes, keepdims=bool(attr(node, "keepdims", 1)))]


@register("Clip")
def clip(node, inputs, consts, ctx):
    from tvm import topi

    x = inputs[0]
    if len(inputs) > 1 and inputs[1] is not None:
        x = topi.maximum(x, inputs[1])
    if len(inputs) > 2 and inputs[2] is not None:
        x = topi.minimum(x, inputs[2])
    return [x]


@register("Gather")
def gather(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.take(inputs[0], inputs[1], axis=int(attr(node, "axis", 0)), mode="wrap")]


@register("GatherND")
def gather_nd(node, inputs, consts, ctx):
    """Constant indices only (what a static graph leaves): out[i...] = data[indices[i..., :]]."""
    from tvm import te

    if consts[1] is None:
        raise ValueError("GatherND with indices that are not constant")
    if int(attr(node, "batch_dims", 0)):
        raise ValueError("GatherND with batch_dims")
    data, indices = inputs[0], consts[1].astype(np.int64)
    depth = indices.shape[-1]
    shape = [int(d) for d in data.shape]
    flat = np.ravel_multi_index(tuple(np.moveaxis(indices % np.array(shape[:depth]), -1, 0)), shape[:depth])
    rows = ctx.constant(flat.astype(np.int32), "rows")  # the flat row of every output position
    inner = shape[depth:]
    table = topi_reshape(data, [int(np.prod(shape[:depth])), *inner])
    return [te.compute([*flat.shape, *inner], lambda *i: table[(rows[i[:flat.ndim]], *i[flat.ndim:])],
                       name="gather_nd")]


@register("Expand")
def expand(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.broadcast_to(inputs[0], [int(d) for d in node.outputs[0].shape])]


@register("Concat")
def concat(node, inputs, consts, ctx):
    from tvm import topi

    return [topi.concatenate(inputs, axis=int(attr(node, "axis")))]


@register("Slice")
def slice_(node, inputs, consts, ctx):
    from tvm import topi

    if any(c is None for c in consts[1:]):
        raise ValueError("Slice with bounds that are not constant")
    x = inputs[0]
    rank = len(x.shape)
    starts, ends = consts[1].tolist(), consts[2].tolist()
    axes = consts[3].tolist() if len(consts) > 3 and consts[3] is not None else list(range(len(starts)))
    steps = consts[4].tolist() if len(consts) > 4 and consts[4] is not None else [1] * len(starts)
    begin, end, stride = [0] * rank, [int(d) for d in x.shape], [1] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        a %= rank
        dim = int(x.shape[a])
        begin[a], end[a], stride[a] = slice(s, e, st).indices(dim)
    return [topi.strided_slice(x, begin, end, stride)]


def topi_reshape(t, shape):
    from tvm import topi

    return topi.reshape(t, shape)


def scalar(value: np.ndarray):
    """A size-1 constant as an inlined TE value of its shape."""
    from tvm import te, tirx

    v = value.reshape(-1)[0].item()
    return te.compute(value.shape, lambda *i: tirx.const(v, value.dtype.name), name="scalar")


def scatter_nd_in_place(symbol: str, shape: tuple[int, ...], index_shape: tuple[int, ...], index_dtype: str,
                        dtype: str):
    """ScatterND writing into its data buffer (nodes.scatter_in_place): data[indices[i]] = updates[i] for every
    index tuple i, the rest of data left as it is — which TE cannot say (a compute writes its whole output),
    so the kernel is TVMScript. Negative indices count from the end; a row outside data is not written."""
    import tvm

    depth = index_shape[-1]
    count = int(np.prod(index_shape[:-1], dtype=np.int64))
    inner = int(np.prod(shape[depth:], dtype=np.int64))
    rows = int(np.prod(shape[:depth], dtype=np.int64))
    strides = [int(np.prod(shape[a + 1:depth], dtype=np.int64)) for a in range(depth)]
    terms = [f"T.if_then_else(indices[i * {depth} + {a}] < 0, indices[i * {depth} + {a}] + {shape[a]}, "
             f"indices[i * {depth} + {a}]) * {strides[a]}" for a in range(depth)]
    row = f"T.Cast('int64', {' + '.join(terms)})"
    source = f'''
@T.prim_func
def {symbol}(indices: T.Buffer(({count * depth},), "{index_dtype}"), updates: T.Buffer(({count * inner},), "{dtype}"),
             data: T.Buffer(({rows * inner},), "{dtype}")):
    T.func_attr({{"global_symbol": "{symbol}", "tirx.noalias": True}})
    for i in range({count}):
        if {row} >= 0 and {row} < {rows}:
            for j in range({inner}):
                data[{row} * {inner} + j] = updates[i * {inner} + j]
'''
    return tvm.script.from_source(source)
