"""The int4 matmul: y[M, N] = x[M, K] · W[K, N], W the graph's own uint4 codes with a scale and zero point per
block of 32 along K (DequantizeLinear axis 0, block_size 32), as a TVM TE kernel and its packed weights.

Layout (packed once, at export): the N columns in groups of R ("pack rows", a target schedule option) so the
innermost loop runs over R contiguous bytes a C compiler turns into SIMD without help:
    codes[N/R, K/32, 16, R]  uint8, byte j of a block holds k = 2j (low nibble) and 2j+1 (high nibble)
    scale[N/R, K/32, R]      float32
    scaled_zero[N/R, K/32, R] float32  scale · zero point
Algebra: Σ_k x·(c − z)·s = s·Σ_k x·c − (s·z)·Σ_k x per block, so the hot loop is one multiply-add per weight
and Σ_k x per block is computed once per row of x. The kernel covers one chunk of C columns; the driver walks
the chunks (and splits them over threads)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 32
SCOPE = "global"  # TVM keeps "global" temporaries under 1 KB on the stack ("local" ones go to the heap)


@dataclass(frozen=True)
class Int4Layout:
    k: int
    n: int
    rows: int  # R: columns interleaved per group
    chunk: int  # C: columns per kernel call (a multiple of R dividing N)


def layout_for(k: int, n: int, pack_rows: int, chunk_columns: int) -> Int4Layout:
    rows = next(r for r in (pack_rows, 64, 32, 16, 8, 4, 2, 1) if r <= pack_rows and n % r == 0)
    groups = n // rows
    per_chunk = max(1, min(groups, chunk_columns // rows))
    while groups % per_chunk:
        per_chunk -= 1
    return Int4Layout(k, n, rows, rows * per_chunk)


def pack(codes: np.ndarray, scale: np.ndarray, zero: np.ndarray, layout: Int4Layout) -> list[np.ndarray]:
    """codes uint4 [K, N], scale float [K/32, N], zero uint4 [K/32, N] -> [codes, scale, scaled_zero]."""
    k, n, r = layout.k, layout.n, layout.rows
    kb = k // BLOCK
    c = codes.astype(np.uint8).reshape(kb, BLOCK // 2, 2, n // r, r)  # [kb, j, h, g, r]
    packed = (c[:, :, 0] | (c[:, :, 1] << 4)).transpose(2, 0, 1, 3)  # [g, kb, j, r]
    s = scale.astype(np.float32).reshape(kb, n // r, r).transpose(1, 0, 2)
    z = zero.astype(np.float32).reshape(kb, n // r, r).transpose(1, 0, 2)
    return [np.ascontiguousarray(packed), np.ascontiguousarray(s), np.ascontiguousarray(s * z)]


def kernel(m: int, layout: Int4Layout, symbol: str):
    """The TVM PrimFunc of one chunk: (x [M, K], codes, scale, scaled_zero of the chunk, y [M, C])."""
    from tvm import s_tir, te, tirx

    k, r, cols = layout.k, layout.rows, layout.chunk
    kb_n = k // BLOCK
    x = te.placeholder((m, k), "float32", name="x")
    codes = te.placeholder((cols // r, kb_n, BLOCK // 2, r), "uint8", name="codes")
    scale = te.placeholder((cols // r, kb_n, r), "float32", name="scale")
    scaled_zero = te.placeholder((cols // r, kb_n, r), "float32", name="scaled_zero")
    i = te.reduce_axis((0, BLOCK), name="i")
    xsum = te.compute((m, kb_n), lambda mi, kb: te.sum(x[mi, kb * BLOCK + i], axis=i), name="xsum")
    j = te.reduce_axis((0, BLOCK // 2), name="j")
    h = te.reduce_axis((0, 2), name="h")

    def code(n, kb):
        byte = codes[n // r, kb, j, n % r]
        return ((byte >> (h * 4).astype("uint8")) & tirx.const(15, "uint8")).astype("float32")

    part = te.compute((m, cols, kb_n), lambda mi, n, kb: te.sum(x[mi, kb * BLOCK + 2 * j + h] * code(n, kb),
                                                                axis=[j, h]), name="part")
    kb = te.reduce_axis((0, kb_n), name="kb")
    y = te.compute((m, cols), lambda mi, n: te.sum(scale[n // r, kb, n % r] * part[mi, n, kb]
                                                   - scaled_zero[n // r, kb, n % r] * xsum[mi, kb], axis=kb),
                   name="y")
    func = te.create_prim_func([x, codes, scale, scaled_zero, y]).with_attr("global_symbol", symbol)

    sch = s_tir.Schedule(func)
    y_block, part_block, xsum_block = sch.get_sblock("y"), sch.get_sblock("part"), sch.get_sblock("xsum")
    sch.cache_write(y_block, 0, SCOPE)  # acc[R] in registers/stack, not y in memory per k
    mi, n, kbl = sch.get_loops(y_block)
    group, lane = sch.split(n, [None, r])
    sch.reorder(mi, group, kbl, lane)
    sch.compute_at(part_block, kbl)  # part[R] of the current block only
    sch.set_scope(part_block, 0, SCOPE)
    pn, pj, ph = sch.get_loops(part_block)[-3:]  # the R columns of the group, then the block's 16 bytes × 2 nibbles
    sch.reorder(pj, ph, pn)  # the R contiguous columns innermost: what gcc vectorizes
    sch.unroll(ph)
    sch.reverse_compute_at(sch.get_sblock("y_" + SCOPE), group)
    sch.decompose_reduction(part_block, pj)
    sch.decompose_reduction(y_block, kbl)
    sch.decompose_reduction(xsum_block, sch.get_loops(xsum_block)[-1])
    return sch.mod["main"]
