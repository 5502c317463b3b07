"""Keep a GGUF file's own quantization: each float weight that was dequantized from a GGUF block
format is replaced by that format's integers, scales and offsets (llm/gguf_formats.py) as a block-wise
DequantizeLinear (minus the per-block offset for formats that have one), which computes exactly the float
values the file dequantizes to. Every replaced weight is checked against the float weight it replaces."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ...errors import ModelError
from ...llm.gguf_formats import FORMATS, Split
from ...llm.gguf_source import GgufWeights, interleaved_heads, open_gguf, rotate_half_rows
from ..edit import GraphEditor

FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}


class GgufWeightsPass(ir.passes.InPlacePass):
    def __init__(self, path: Path, config):
        super().__init__()
        self.path, self.config = Path(path), config
        self.kept: collections.Counter[str] = collections.Counter()  # GGUF type -> tensors kept exactly
        self.widened: collections.Counter[str] = collections.Counter()  # types with no int form: float32
        self.float_types: collections.Counter[str] = collections.Counter()

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        weights = GgufWeights(self.path, open_gguf(self.path), self.config)
        editor = GraphEditor(model.graph)
        for value in list(model.graph.initializers.values()):
            tensor = weights.tensor_for(value.name)
            if tensor is None or value.const_value is None:
                continue
            kind = tensor.tensor_type.name
            if kind in FLOAT_TYPES:
                self.float_types[kind] += 1
                continue
            if kind not in FORMATS:
                self.widened[kind] += 1  # the float32 values stay: exact, only wider
                continue
            rows, cols = int(tensor.shape[1]) if len(tensor.shape) > 1 else 1, int(tensor.shape[0])
            split = _split(FORMATS[kind], np.asarray(tensor.data).reshape(rows, -1), cols)
            split = self._loader_row_order(value.name, split)
            # A MatMul reads its weight as [in, out], the transpose of the file's rows; a Gather/Gemm(transB) table not.
            transposed = any(use.node.op_type == "MatMul" and use.idx == 1 for use in value.uses())
            weight = value.const_value.numpy()
            weight = weight.T if transposed else weight
            difference = _difference(split, weight)
            if difference:
                raise ModelError(f"{self.path.name}: tensor {tensor.name} ({kind}) does not reproduce the float weight "
                                 f"{value.name} in the graph ({difference}); gguf cannot keep it")
            value.replace_all_uses_with(_dequantize(editor, value.name, split, transposed))
            self.kept[kind] += 1
        editor.finish()
        return ir.passes.PassResult(model, bool(self.kept))

    def _loader_row_order(self, name: str, split: Split) -> Split:
        """The float weight's query/key rows are in transformers' order (gguf_source.py); the blocks follow
        their rows."""
        heads = interleaved_heads(self.config, name)
        if not heads:
            return split
        offset = None if split.offset is None else rotate_half_rows(split.offset, heads)
        return Split(rotate_half_rows(split.q, heads), rotate_half_rows(split.scale, heads), offset, split.block, split.bits)

    def report(self) -> dict:
        return {"gguf_file": self.path.name, "kept_exact": dict(self.kept), "widened_to_float32": dict(self.widened),
                "float_in_file": dict(self.float_types)}


ROWS_PER_CHUNK = 4096  # splitting and checking a large table a few thousand rows at a time keeps temporaries small


def _split(fmt, raw: np.ndarray, cols: int) -> Split:
    parts = [fmt.split(raw[start:start + ROWS_PER_CHUNK], cols) for start in range(0, len(raw), ROWS_PER_CHUNK)]
    if len(parts) == 1:
        return parts[0]
    offsets = None if parts[0].offset is None else np.concatenate([p.offset for p in parts])
    return Split(np.concatenate([p.q for p in parts]), np.concatenate([p.scale for p in parts]), offsets,
                 parts[0].block, parts[0].bits)


def _difference(split: Split, weight: np.ndarray) -> str:
    """'' when ``split`` gives exactly ``weight`` [rows, cols], else what differs."""
    if split.q.shape != weight.shape:
        return f"shape {split.q.shape} against {weight.shape}"
    differences = []
    for start in range(0, len(weight), ROWS_PER_CHUNK):
        rows = slice(start, start + ROWS_PER_CHUNK)
        chunk = Split(split.q[rows], split.scale[rows], None if split.offset is None else split.offset[rows],
                      split.block, split.bits).values()
        if not np.array_equal(chunk, weight[rows]):
            differences.append(float(np.abs(chunk - weight[rows]).max()))
    return f"max difference {max(differences)}" if differences else ""


def _dequantize(editor: GraphEditor, hint: str, split: Split, transposed: bool) -> ir.Value:
    """``q · scale − offset`` as graph nodes, in the weight's layout: [rows, cols] blocks along axis 1, or
    transposed ([cols, rows], a MatMul's [in, out]) blocks along axis 0."""
    signed = split.q.dtype == np.int8
    qtype = {(4, True): ir.DataType.INT4, (4, False): ir.DataType.UINT4,
             (8, True): ir.DataType.INT8, (8, False): ir.DataType.UINT8}[(split.bits, signed)]
    q, scale, offset = split.q, split.scale, split.offset
    axis = 1
    if transposed:
        q, scale, offset, axis = q.T, scale.T, None if offset is None else offset.T, 0
    q_value = editor.constant(f"{hint}_q{split.bits}", np.ascontiguousarray(q), dtype=qtype)
    scale_value = editor.constant(f"{hint}_scale", np.ascontiguousarray(scale))
    dq = editor.add("DequantizeLinear", [q_value, scale_value], {"axis": axis, "block_size": split.block},
                    hint=f"{hint}_dequantize")
    if offset is None:
        return dq.outputs[0]
    rows, cols = q.shape
    if axis == 1:
        blocked, offsets, shape = [rows, cols // split.block, split.block], offset[:, :, None], [rows, cols]
    else:
        blocked, offsets, shape = [rows // split.block, split.block, cols], offset[:, None, :], [rows, cols]
    grouped = editor.add("Reshape", [dq.outputs[0], editor.constant(f"{hint}_blocks", np.array(blocked, np.int64))],
                         hint=f"{hint}_blocks")
    shifted = editor.add("Sub", [grouped.outputs[0], editor.constant(f"{hint}_offset", np.ascontiguousarray(offsets))],
                         hint=f"{hint}_offset")
    flat = editor.add("Reshape", [shifted.outputs[0], editor.constant(f"{hint}_shape", np.array(shape, np.int64))],
                      hint=f"{hint}_weight")
    return flat.outputs[0]
