"""Quantized weights read as they are: MatMul(x, DequantizeLinear(uint4 codes, scale, zero point; axis 0, blocks
of 32)) becomes the int4 kernel of int4.py over codes packed for it, a Gemm(x, Wᵀ) the same on the transposed
table, and Gather(DequantizeLinear(... axis 1 ...), ids) gathers rows of codes and dequantizes only those (from
the output layer's packed table when a tied Gemm reads it too)."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedOperatorError
from . import int4, ops
from .builder import Builder, Call, QuantizedWeight


def check_consumers(node) -> None:
    for user, slot in node.outputs[0].uses():
        ok = (user.op_type in ("MatMul", "Gemm") and slot == 1) or (user.op_type == "Gather" and slot == 0)
        if not ok:
            raise UnsupportedOperatorError(node.op_type, node.name, detail=f"int4 weights read by {user.op_type} "
                                           f"'{user.name}' (the C backend reads them in MatMul, Gemm and Gather)")


def int4_matmul(b: Builder, node, step: int, weight: QuantizedWeight) -> None:
    if weight.axis != 0 or weight.block != int4.BLOCK or weight.codes.ndim != 2:
        raise UnsupportedOperatorError("MatMul", node.name, detail=f"int4 weights with axis {weight.axis}, block "
                                       f"{weight.block} (the C kernel takes blocks of {int4.BLOCK} along K)")
    k, n = weight.codes.shape
    x, y = node.inputs[0], node.outputs[0]
    m = int(np.prod([int(d) for d in x.shape[:-1]]))
    layout, packed = _packed_for_matmul(b, weight, node.name)
    args = [b.operand(x, step), *packed, b.value(y, step, defining=True)]
    symbol = b.kernel(f"int4 m={m} k={k} chunk={layout.chunk} rows={layout.rows}",
                      lambda s: int4.kernel(m, layout, s))
    if m > 1:
        b.plan.scratch_floats = max(b.plan.scratch_floats, m * layout.chunk)
    b.entry.calls.append(Call(node.name, symbol, args, {"m": m, "k": k, "n": n, "chunk": layout.chunk,
                                                       "rows": layout.rows}, op=f"{node.op_type} int4"))


def _packed_for_matmul(b: Builder, weight: QuantizedWeight, name: str) -> tuple[int4.Int4Layout, list[int]]:
    """The int4 kernel's layout of a [K, N] weight and its packed tensors (codes, scale, scale·zero), stored once
    for every node that reads them in this form."""
    k, n = weight.codes.shape
    layout = int4.layout_for(k, n, b.options.pack_rows, b.options.chunk_columns)

    def packed():
        arrays = int4.pack(weight.codes, weight.scale, weight.zero, layout)
        return [(a, f"{name}.{part}") for a, part in zip(arrays, ("codes", "scale", "scaled_zero"))]

    return layout, b.store(weight.source, packed, "int4 matmul")


def gemm_as_matmul(node, weight: QuantizedWeight) -> QuantizedWeight:
    """Gemm(x, Wᵀ) with W [N, K] blocked along K (a tied output layer reading the embedding table) as the
    MatMul weight [K, N] blocked along K."""
    plain = (ops.attr(node, "transA", 0) == 0 and ops.attr(node, "alpha", 1.0) == 1.0
             and (len(node.inputs) < 3 or node.inputs[2] is None))
    if not plain or ops.attr(node, "transB", 0) != 1 or weight.axis != 1:
        raise UnsupportedOperatorError("Gemm", node.name, detail="int4 weights in a Gemm other than x·Wᵀ with W "
                                       "blocked along its rows (no bias, alpha 1)")
    return weight.transposed()


def int4_gather(b: Builder, node, step: int, weight: QuantizedWeight) -> None:
    from tvm import te, tirx

    codes, scale, block = weight.codes, weight.scale, weight.block
    if weight.axis != 1 or codes.ndim != 2 or int(ops.attr(node, "axis", 0)) != 0 or codes.shape[1] % block or block % 2:
        raise UnsupportedOperatorError("Gather", node.name, detail="int4 table not blocked along its rows' width")
    rows, width = codes.shape
    ids, out = node.inputs[1], node.outputs[0]
    id_shape = tuple(int(d) for d in ids.shape)
    tied = _tied_output_layer(node.inputs[0], weight)
    if tied is not None:  # the output layer's packed table serves the embedding too: stored once
        _gather_packed(b, node, step, tied)
        return

    def stored():
        c = codes.astype(np.uint8).reshape(rows, width // 2, 2)
        table = (c[:, :, 0] | (c[:, :, 1] << 4)).astype(np.uint8)
        return [(table, f"{node.name}.codes"), (scale, f"{node.name}.scale"),
                (scale * weight.zero.astype(np.float32), f"{node.name}.scaled_zero")]

    args = [b.operand(ids, step), *b.store(weight.source, stored, "int4 gather"), b.value(out, step, defining=True)]
    table_shape = (rows, width // 2)

    def make(symbol):
        idx = te.placeholder(id_shape, ids.dtype.numpy().name, name="ids")
        t = te.placeholder(table_shape, "uint8", name="codes")
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

    symbol = b.kernel(f"gather_int4 ids={id_shape}:{ids.dtype} table={table_shape} block={block}", make)
    b.entry.calls.append(Call(node.name, symbol, args, op="Gather int4"))


def _tied_output_layer(table, weight: QuantizedWeight) -> QuantizedWeight | None:
    """The table in its matmul form when a Gemm reads it as x·Wᵀ too (a tied output layer) and the int4 kernel
    takes its blocks, else None."""
    if weight.block != int4.BLOCK:
        return None
    for user, slot in table.uses():
        if user.op_type == "Gemm" and slot == 1:
            try:
                return gemm_as_matmul(user, weight)
            except UnsupportedOperatorError:
                return None
    return None


def _gather_packed(b: Builder, node, step: int, weight: QuantizedWeight) -> None:
    """Rows of a table [V, D] read from the int4 matmul layout of its transpose (codes [V/R, D/32, 16, R]): row t
    is column t there, element d in byte (d mod 32) / 2 of block d / 32, group t / R, lane t mod R."""
    from tvm import te, tirx

    width, rows = weight.codes.shape
    layout, packed = _packed_for_matmul(b, weight, node.name)
    r, blocks = layout.rows, width // int4.BLOCK
    ids, out = node.inputs[1], node.outputs[0]
    id_shape = tuple(int(d) for d in ids.shape)
    args = [b.operand(ids, step), *packed, b.value(out, step, defining=True)]

    def make(symbol):
        idx = te.placeholder(id_shape, ids.dtype.numpy().name, name="ids")
        codes = te.placeholder((rows // r, blocks, int4.BLOCK // 2, r), "uint8", name="codes")
        scale = te.placeholder((rows // r, blocks, r), "float32", name="scale")
        scaled_zero = te.placeholder((rows // r, blocks, r), "float32", name="scaled_zero")

        def element(*i):
            t = tirx.floormod(idx[i[:-1]].astype("int32"), rows)
            d = i[-1]
            g, lane, kb = t // r, t % r, d // int4.BLOCK
            byte = codes[g, kb, (d % int4.BLOCK) // 2, lane]
            code = ((byte >> ((d % 2) * 4).astype("uint8")) & tirx.const(15, "uint8")).astype("float32")
            return code * scale[g, kb, lane] - scaled_zero[g, kb, lane]

        result = te.compute((*id_shape, width), element, name="gather_int4_packed")
        return te.create_prim_func([idx, codes, scale, scaled_zero, result]).with_attr("global_symbol", symbol)

    symbol = b.kernel(f"gather_int4_packed ids={id_shape}:{ids.dtype} rows={rows} width={width} lanes={r}", make)
    b.entry.calls.append(Call(node.name, symbol, args, op="Gather int4"))

