"""Embedding tables (Gather from a constant 2-D table): int8 per row, or int4/uint4 per block along the
hidden axis. In MiniLM the word embeddings are half of the weights, so without this the file stays big."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..numerics import blockwise, symmetric_int8
from ..patterns import embeddings
from .weights import dequantize_node


class EmbeddingPass(ir.passes.InPlacePass):
    def __init__(self, bits: int = 8, block_size: int = 32, symmetric: bool = False):
        super().__init__()
        self.bits, self.block_size, self.symmetric = bits, block_size, symmetric
        self.quantized: list[str] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = GraphEditor(model.graph)
        for node in embeddings(model.graph):
            table = node.inputs[0]
            array = table.const_value.numpy()
            if self.bits == 8:
                q, scale = symmetric_int8(array, axis=0)
                dq = dequantize_node(editor, table.name, q, scale, np.zeros_like(scale, dtype=np.int8), axis=0)
            else:
                if array.shape[1] % self.block_size:
                    continue
                # Blocks run along the hidden axis (axis 1): quantize the transpose, whose K is that axis.
                q, scale, zp = blockwise(array.T, self.block_size, bits=4, symmetric=self.symmetric)
                dq = dequantize_node(
                    editor, table.name, q.T, scale.T, None if zp is None else zp.T, axis=1,
                    block_size=self.block_size, bits=4,
                )
            node.replace_input_with(0, dq.outputs[0])
            self.quantized.append(node.name)
        editor.finish()
        return ir.passes.PassResult(model, bool(self.quantized))
