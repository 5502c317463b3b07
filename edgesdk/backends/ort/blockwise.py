"""Block-wise quantized weights (int4 recipe, GGUF blocks kept by the gguf recipe) onto ORT's kernels.

A weight read as DequantizeLinear(const int4/uint4/int8/uint8, scale, [zero point], block_size) — and, for
GGUF formats with a per-block minimum, a Sub of that offset between two Reshapes — becomes:
- MatMul (weight [K, N], blocks along K) or Gemm with transB (table [N, K]): MatMulNBits, 4 or 8 bits. A
  per-block offset is taken out of the product: x·(s⊙q − o) = MatMulNBits(x; q, s) − blocksum(x)·o, a
  [K/block, N] float matmul on the per-block sums of x. (ORT's float zero points would express it directly,
  but its kernel with them is ~100x slower: 640x2048 at one token, 2.06 ms against 0.02 ms.)
- Gather of a table [V, H] (blocks along H): GatherBlockQuantized. An 8-bit table is stored as uint8
  [V, H/block, block], the layout MatMulNBits reads too, so a tied output layer shares the very same bytes.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import onnx_ir as ir

from ...quant.edit import GraphEditor
from .lowering import MS, _as_uint4, _bias_after, _drop_dead, _pack_nibbles, _replace

_INT_TYPES = {ir.DataType.INT4: (4, True), ir.DataType.UINT4: (4, False),
              ir.DataType.INT8: (8, True), ir.DataType.UINT8: (8, False)}


@dataclasses.dataclass
class BlockWeight:
    """A weight as ``(q − zero_point) · scale − offset`` with rows = output channels (or table rows) and
    blocks along the columns."""

    q: np.ndarray  # [N, K]: int8/uint8 as stored (8 bits; no wider copy of a large weight), int16 (4 bits)
    scale: np.ndarray  # float32 [N, K/block]
    zero_point: np.ndarray | None  # int16 [N, K/block]
    offset: np.ndarray | None  # float32 [N, K/block]
    bits: int
    signed: bool
    block: int
    source: ir.Value  # the integer constant: one lowered copy per source (and part)
    part: str = ""  # "high" / "low" for the halves of an 8-bit weight (nibbles())

    @functools.cached_property
    def unsigned(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint values [N, K], uint zero points [N, K/block]) with the same real values; made once (a
        vocabulary table is read by its Gather and by the tied output layer)."""
        if self.bits == 4:
            values, zp = _as_uint4(self.q, self.zero_point, self.signed)
            if self.zero_point is None:
                zp = np.full(self.scale.shape, 8 if self.signed else 0, np.uint8)
            return values, zp
        shift = 128 if self.signed else 0
        zp = np.zeros(self.scale.shape, np.int16) if self.zero_point is None else self.zero_point
        values = self.q.view(np.uint8) ^ np.uint8(0x80) if self.signed else self.q.astype(np.uint8, copy=False)
        return values, np.broadcast_to(zp + shift, self.scale.shape).astype(np.uint8)

    def nibbles(self) -> list[BlockWeight]:
        """An 8-bit weight as two 4-bit ones whose sum is its exact value (for float activations, which ORT's
        8-bit kernel runs ~20x slower than its 4-bit one): s·(u − z) = 16s·(u>>4 − z>>4) + s·(u&15 − z&15).
        Each half is exact in float32 (a GGUF scale has at most 19 significant bits, times a 4-bit integer)."""
        values, zp = self.unsigned
        return [BlockWeight(values >> 4, self.scale * np.float32(16), zp >> 4, None, 4, False, self.block, self.source, "high"),
                BlockWeight(values & 15, self.scale, zp & 15, None, 4, False, self.block, self.source, "low")]


def read_block_weight(value: ir.Value | None, rows_first: bool) -> BlockWeight | None:
    """The block weight behind ``value``; ``rows_first``: a [N, K] table (blocks along axis 1), else a
    MatMul's [K, N] (blocks along axis 0)."""
    if value is None:
        return None
    offset = None
    node = value.producer()
    if node is not None and node.op_type == "Reshape":
        sub = node.inputs[0].producer()
        if sub is None or sub.op_type != "Sub" or sub.inputs[1].const_value is None:
            return None
        inner = sub.inputs[0].producer()
        if inner is None or inner.op_type != "Reshape":
            return None
        offset = sub.inputs[1].const_value.numpy()
        node = inner.inputs[0].producer()
    if node is None or node.op_type != "DequantizeLinear" or node.inputs[0].const_value is None:
        return None
    block = node.attributes.get_int("block_size", 0)
    axis = node.attributes.get_int("axis", 1)
    kind = _INT_TYPES.get(node.inputs[0].dtype)
    if not block or kind is None or axis != (1 if rows_first else 0) or node.inputs[1].const_value is None:
        return None
    q = node.inputs[0].const_value.numpy()
    q = q if q.dtype in (np.int8, np.uint8) else q.astype(np.int16)
    scale = node.inputs[1].const_value.numpy().astype(np.float32)
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zero_point = zp_value.const_value.numpy().astype(np.int16) if zp_value is not None and zp_value.const_value is not None else None
    if offset is not None:
        offset = offset[:, :, 0] if rows_first else offset[:, 0, :]
    if not rows_first:
        q, scale = q.T, scale.T
        zero_point = None if zero_point is None else zero_point.T
        offset = None if offset is None else offset.T
    if q.shape[1] % block:
        return None
    return BlockWeight(q, scale, zero_point, offset, kind[0], kind[1], block, node.inputs[0])


class _Lowered:
    """Lowered constants, made once per source weight (a tied table feeds a Gather and a MatMulNBits)."""

    def __init__(self, editor: GraphEditor):
        self.editor = editor
        self._data: dict[int, ir.Value] = {}

    def data(self, w: BlockWeight) -> ir.Value:
        """[N, K/block, bytes per block]: packed nibbles for 4 bits, uint8 for 8."""
        key = (id(w.source), w.part)
        if key not in self._data:
            values, _ = w.unsigned
            n, k = values.shape
            blocks = values.reshape(n, k // w.block, w.block)
            name = f"{w.source.name}_{w.part}_blocks" if w.part else f"{w.source.name}_blocks"
            self._data[key] = self.editor.constant(name, _pack_nibbles(blocks) if w.bits == 4 else blocks)
        return self._data[key]


def _matmul_nbits_inputs(lowered: _Lowered, w: BlockWeight, hint: str) -> list[ir.Value]:
    editor = lowered.editor
    _, zp = w.unsigned
    if w.bits == 4:
        zero_point = editor.constant(f"{hint}_nbits_zp", _pack_nibbles(zp).reshape(-1))
    else:
        zero_point = editor.constant(f"{hint}_nbits_zp", zp.reshape(-1))
    scales = editor.constant(f"{hint}_nbits_scales", w.scale.reshape(-1))
    return [lowered.data(w), scales, zero_point]


INT8_ACTIVATIONS = 4  # MatMulNBits accuracy level: activations quantized to int8 per block


def _kernel_weights(w: BlockWeight, accuracy_level: int) -> list[BlockWeight]:
    """The weights MatMulNBits / GatherBlockQuantized run for ``w``: an 8-bit one as its two exact 4-bit
    halves unless the activations are int8 (ORT 1.31's 8-bit kernel with float activations is ~20x slower
    than its 4-bit one: python benchmarks/ort_block_kernels.py)."""
    return w.nibbles() if w.bits == 8 and accuracy_level < INT8_ACTIVATIONS else [w]


def lower_block_weights(graph: ir.Graph, accuracy_level: int = 4) -> dict[str, int]:
    """MatMul / Gemm(transB) on a block weight → MatMulNBits; Gather of an 8-bit block table →
    GatherBlockQuantized (4-bit tables are lowering.lower_embedding_gathers' job). Both read one copy.
    ``accuracy_level`` 4: int8 activations; below 4, float activations, and 8-bit weights then run as their
    two exact 4-bit halves (BlockWeight.nibbles), their products added."""
    editor = GraphEditor(graph)
    lowered = _Lowered(editor)
    counts = {"MatMulNBits": 0, "GatherBlockQuantized": 0, "offset corrections": 0}
    # A tied table is read once for its Gather and its output layer; other weights are read, lowered and let go.
    read_table = functools.cache(functools.partial(read_block_weight, rows_first=True))
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        if node.op_type == "Gather" and node.attributes.get_int("axis", 0) == 0:
            w = read_table(node.inputs[0])
            if w is not None and w.bits == 8 and w.offset is None:
                parts = _kernel_weights(w, accuracy_level)  # the same bytes a tied output layer reads
                _replace(editor, node.outputs[0], _sum(editor, [_gather_rows(editor, lowered, node, p) for p in parts], node.name))
                counts["GatherBlockQuantized"] += len(parts)
            continue
        if node.op_type == "MatMul":
            w = read_block_weight(node.inputs[1], rows_first=False)
        elif node.op_type == "Gemm" and node.attributes.get_int("transB", 0) and not node.attributes.get_int("transA", 0) \
                and len(node.inputs) < 3 and node.attributes.get_float("alpha", 1.0) == 1.0:
            w = read_table(node.inputs[1])
        else:
            continue
        if w is None:
            continue
        n, k = w.q.shape
        bias, replaced = _bias_after(node) if node.op_type == "MatMul" else (None, node.outputs[0])
        parts = _kernel_weights(w, accuracy_level)
        products = []
        for index, part in enumerate(parts):
            inputs = _matmul_nbits_inputs(lowered, part, f"{node.inputs[1].name or node.name}{part.part}")
            attributes = {"K": k, "N": n, "bits": part.bits, "block_size": w.block, "accuracy_level": accuracy_level}
            with_bias = [None, bias] if bias is not None and index == 0 else []
            products.append(editor.add("MatMulNBits", [node.inputs[0], *inputs, *with_bias], attributes,
                                       hint=f"{node.name}_int{part.bits}{part.part}", domain=MS).outputs[0])
        result = _sum(editor, products, node.name)
        if w.offset is not None:
            result = _minus_offsets(editor, node, w, result)
            counts["offset corrections"] += 1
        _replace(editor, replaced, result)
        counts["MatMulNBits"] += len(parts)
    _drop_dead(graph)
    editor.finish()
    return counts


def _sum(editor: GraphEditor, values: list[ir.Value], hint: str) -> ir.Value:
    return values[0] if len(values) == 1 else editor.add("Add", values, hint=f"{hint}_halves").outputs[0]


def _minus_offsets(editor: GraphEditor, node: ir.Node, w: BlockWeight, product: ir.Value) -> ir.Value:
    """``product`` − blocksum(x) · offsetᵀ: the per-block offsets of ``w`` taken out of x·W."""
    n, k = w.q.shape
    hint = node.inputs[1].name or node.name
    x = node.inputs[0]
    blocks = editor.add("Reshape", [x, editor.constant(f"{hint}_x_blocks", np.array([-1, k // w.block, w.block], np.int64))],
                        hint=f"{node.name}_x_blocks")
    sums = editor.add("ReduceSum", [blocks.outputs[0], editor.constant(f"{hint}_last", np.array([-1], np.int64))],
                      {"keepdims": 0}, hint=f"{node.name}_block_sums")
    offsets = editor.constant(f"{hint}_offsets", np.ascontiguousarray(w.offset.T))  # [K/block, N]
    correction = editor.add("MatMul", [sums.outputs[0], offsets], hint=f"{node.name}_offsets")
    shaped = editor.add("Reshape", [correction.outputs[0], editor.add("Shape", [product], hint=f"{node.name}_shape").outputs[0]],
                        hint=f"{node.name}_offsets_shaped")
    return editor.add("Sub", [product, shaped.outputs[0]], hint=f"{node.name}_minus_offsets").outputs[0]


def _gather_rows(editor: GraphEditor, lowered: _Lowered, node: ir.Node, w: BlockWeight) -> ir.Value:
    """GatherBlockQuantized on the [V, H/block, bytes per block] data MatMulNBits reads too, reshaped back
    to [..., H]."""
    _, zp = w.unsigned
    hint = f"{node.inputs[0].name or node.name}{w.part}"
    scales = editor.constant(f"{hint}_gather_scales", w.scale[:, :, None])
    zero_point = editor.constant(f"{hint}_gather_zp", zp[:, :, None])  # one per block: the low nibble
    gathered = editor.add("GatherBlockQuantized", [lowered.data(w), node.inputs[1], scales, zero_point],
                          {"gather_axis": 0, "quantize_axis": 2, "block_size": w.block, "bits": w.bits},
                          hint=f"{node.name}_blocks{w.part}", domain=MS)
    ids_shape = editor.add("Shape", [node.inputs[1]], hint=f"{node.name}_ids_shape")
    hidden = editor.constant(f"{node.name}_hidden", np.array([w.q.shape[1]], np.int64))
    shape = editor.add("Concat", [ids_shape.outputs[0], hidden], {"axis": 0}, hint=f"{node.name}_rows_shape")
    return editor.add("Reshape", [gathered.outputs[0], shape.outputs[0]], hint=f"{node.name}_rows").outputs[0]
