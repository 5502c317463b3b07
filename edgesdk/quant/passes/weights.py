"""Weight quantization of linear layers, written as DequantizeLinear on a constant integer weight."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..gptq import HessianFactor, factor_hessian, gptq
from ..numerics import blockwise, symmetric_int8
from ..observers import Gram
from ..patterns import Linear, linears


class Int8WeightsPass(ir.passes.InPlacePass):
    """Per-output-channel symmetric int8 weights for every MatMul/Gemm with a constant weight.

    A [vocab, hidden] table an output layer shares with embedding Gathers is quantized once; the Gathers
    read its quantized form at once, or only when ``share_tables`` is called if ``share_tables_now`` is off
    (a calibration run in between then gathers from the float table instead of dequantizing the whole
    table at every run)."""

    def __init__(self, skip: set[str] | None = None, share_tables_now: bool = True):
        super().__init__()
        self.skip, self.share_tables_now = skip or set(), share_tables_now
        self.quantized: list[str] = []
        self.tables: list[tuple[ir.Value, ir.Value]] = []  # (float table, its dequantized form)

    def share_tables(self) -> None:
        for table, dequantized in self.tables:
            share_with_gathers(table, dequantized)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = GraphEditor(model.graph)
        for linear in linears(model.graph):
            if linear.node.name in self.skip:
                continue
            q, scale = symmetric_int8(linear.weight_array(), axis=linear.weight_axis)
            dq = dequantize_node(editor, linear.weight.name, q, scale, np.zeros_like(scale, dtype=np.int8), linear.weight_axis)
            linear.node.replace_input_with(1, dq.outputs[0])
            if linear.weight_axis == 0:  # per row of a [vocab, hidden] table: what an embedding Gather reads too
                self.tables.append((linear.weight, dq.outputs[0]))
            self.quantized.append(linear.node.name)
        editor.finish()
        if self.share_tables_now:
            self.share_tables()
        return ir.passes.PassResult(model, bool(self.quantized))


class BlockWeightsPass(ir.passes.InPlacePass):
    """Weight-only block-wise int4/int8 along the input axis (opset 21 block-wise DequantizeLinear).

    ``bits_for``: a bit width per node name (the output layer's own). ``grams``: an observers.Gram per
    activation name; the linears reading one are rounded by GPTQ against its Hessian (a table an embedding
    also reads keeps plain rounding: its rows serve the lookup as much as the product). ``per_channel``: 8-bit scales per output channel, the
    same for every block (weight-only int8 per channel, in the block form the runtimes' kernels take).
    ``only``: quantize just the linears reading these activations."""

    def __init__(self, block_size: int = 32, bits: int = 4, symmetric: bool = False, search_clip: bool = True,
                 bits_for: dict[str, int] | None = None, grams: dict[str, Gram] | None = None,
                 act_order: bool = True, per_channel: bool = False, only: set[str] | None = None):
        super().__init__()
        self.block_size, self.bits, self.symmetric, self.search_clip = block_size, bits, symmetric, search_clip
        self.bits_for, self.grams, self.act_order = bits_for or {}, grams or {}, act_order
        self.per_channel, self.only = per_channel, only
        self.quantized: dict[str, str] = {}  # node -> how ("int4 gptq", "int8 per channel", ...)
        self.skipped: dict[str, str] = {}
        self._factors: OrderedDict[str, HessianFactor] = OrderedDict()

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = GraphEditor(model.graph)
        for linear in linears(model.graph):
            if self.only is not None and linear.activation.name not in self.only:
                continue
            w = linear.k_by_n()  # blocks run along K
            bits = self.bits_for.get(linear.node.name, self.bits)
            block = _channel_block(w.shape[0]) if bits == 8 and self.per_channel else self.block_size
            if block is None or w.shape[0] % block:
                self.skipped[linear.node.name] = f"K={w.shape[0]} is not a multiple of {block or 'a power of two ≥ 16'}"
                continue
            q, scale, zp, how = self._rounded(linear, w, bits, block)
            if linear.input_axis != 0:  # back to the stored orientation
                q, scale, zp = q.T, scale.T, (None if zp is None else zp.T)
            dq = dequantize_node(editor, linear.weight.name, q, scale, zp, axis=linear.input_axis, block_size=block, bits=bits)
            linear.node.replace_input_with(1, dq.outputs[0])
            if linear.input_axis == 1:  # blocks along the hidden axis of a [vocab, hidden] table, as embeddings
                share_with_gathers(linear.weight, dq.outputs[0])
            self.quantized[linear.node.name] = how
        editor.finish()
        return ir.passes.PassResult(model, bool(self.quantized))

    def _factor(self, activation: str, gram: Gram) -> HessianFactor:
        """The activation's Hessian factored once for the linears that read it (they come one after another:
        the last few are kept)."""
        if activation not in self._factors:
            self._factors[activation] = factor_hessian(gram.hessian, self.act_order)
            while len(self._factors) > 3:
                self._factors.popitem(last=False)
        return self._factors[activation]

    def _rounded(self, linear: Linear, w: np.ndarray, bits: int, block: int):
        if bits == 8 and self.per_channel:
            q, scale = symmetric_int8(w, axis=1)
            return q, np.repeat(scale[None, :], w.shape[0] // block, axis=0), None, "int8 per channel"
        gram = self.grams.get(linear.activation.name)
        if gram is not None and gram.rows and len(linear.weight.uses()) == 1:
            q, scale, zp = gptq(w, self._factor(linear.activation.name, gram), block, bits, self.symmetric)
            return q, scale, zp, f"int{bits} gptq"
        q, scale, zp = blockwise(w, block, bits=bits, symmetric=self.symmetric, search_clip=self.search_clip)
        return q, scale, zp, f"int{bits} {'clip-searched ' if self.search_clip else ''}round-to-nearest"


def _channel_block(k: int) -> int | None:
    """The largest power-of-two block (16…128) dividing K: per-channel scales repeated per block."""
    return next((block for block in (128, 64, 32, 16) if k % block == 0), None)


def share_with_gathers(weight: ir.Value, dequantized: ir.Value) -> None:
    """A tied output layer: the embedding Gathers that read the same table read its quantized form too,
    so the table is stored once (the embedding pass then finds nothing float left to quantize)."""
    for use in list(weight.uses()):
        node = use.node
        if node.op_type == "Gather" and use.idx == 0 and node.attributes.get_int("axis", 0) == 0:
            node.replace_input_with(0, dequantized)


def dequantize_node(
    editor: GraphEditor,
    hint: str,
    q: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    axis: int,
    block_size: int | None = None,
    bits: int = 8,
) -> ir.Node:
    """A DequantizeLinear of a constant: int8 per-axis, or int4/uint4 block-wise (opset 21)."""
    if bits == 4:
        signed = zero_point is None or zero_point.min() < 0 or q.min() < 0
        qtype = ir.DataType.INT4 if signed else ir.DataType.UINT4
        # onnx_ir wants int4 data as int8 and uint4 as uint8 arrays (one value per byte, packed on save).
        store = np.int8 if signed else np.uint8
        qvalue = editor.constant(f"{hint}_q4", q.astype(store), dtype=qtype)
        zp = None if zero_point is None else editor.constant(f"{hint}_zp4", zero_point.astype(store), dtype=qtype)
    else:
        qvalue = editor.constant(f"{hint}_q8", q)
        zp = None if zero_point is None else editor.constant(f"{hint}_zp8", zero_point)
    scale_value = editor.constant(f"{hint}_scale", scale.astype(np.float32))
    attributes = {"axis": axis}
    if block_size:
        attributes["block_size"] = block_size
    inputs = [qvalue, scale_value] + ([zp] if zp is not None else [])
    return editor.add("DequantizeLinear", inputs, attributes, hint=f"{hint}_dequantize")
