"""Each ORT lowering computes what the standard QDQ graph computes: run both with ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgesdk
from edgesdk.backends.ort.blockwise import lower_block_weights
from edgesdk.backends.ort.lowering import fuse_erf_gelu, keep_residual_add_unfused, lower_embedding_gathers
from edgesdk.graph import Graph
from edgesdk.quant.passes.embeddings import EmbeddingPass
from edgesdk.quant.passes.weights import BlockWeightsPass
from edgesdk.runtime import ort_session
from tests.helpers import mlp_model


def run(graph: Graph, feed):
    return ort_session(graph, optimization="basic").run(None, feed)[0]


def lowered(graph: Graph, lowering, *args) -> tuple[Graph, int]:
    copy = graph.clone()
    count = lowering(copy.model.graph, *args)
    copy.model.opset_imports.setdefault("com.microsoft", 1)
    return copy, count


@pytest.mark.parametrize("symmetric", [True, False])
def test_matmul_nbits_matches_blockwise_dequantize(tmp_path, symmetric):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx", hidden=64))
    graph.model.opset_imports[""] = 21
    BlockWeightsPass(block_size=16, symmetric=symmetric)(graph.model)
    # accuracy level 0: float activations, exact
    fused, count = lowered(graph, lambda g: lower_block_weights(g, 0)["MatMulNBits"])
    assert count == 2 and fused.op_counts()["com.microsoft::MatMulNBits"] == 2
    x = np.random.default_rng(0).normal(size=(2, 16, 32)).astype(np.float32)
    np.testing.assert_allclose(run(fused, {"x": x}), run(graph, {"x": x}), rtol=1e-4, atol=1e-4)


def _embedding_model(path, vocab=100, hidden=64):
    table = numpy_helper.from_array(np.random.default_rng(3).normal(size=(vocab, hidden)).astype(np.float32), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0, name="embed")
    graph = helper.make_graph([node], "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 7])],
                              [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 7, hidden])], initializer=[table])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path)
    return edgesdk.load(path)


@pytest.mark.parametrize("bits", [8, 4])
def test_embedding_gather_lowering_is_exact(tmp_path, bits):
    graph = _embedding_model(tmp_path / "emb.onnx")
    EmbeddingPass(bits=bits, block_size=32)(graph.model)
    fused, count = lowered(graph, lower_embedding_gathers)
    assert count == 1 and "DequantizeLinear" not in fused.op_counts()
    ids = np.array([[0, 5, 99, 42, 7, 7, 1]], np.int64)
    np.testing.assert_allclose(run(fused, {"ids": ids}), run(graph, {"ids": ids}), rtol=1e-6, atol=1e-6)


def test_gelu_and_residual_lowerings_preserve_the_minilm_output(minilm_graph, minilm_data):
    calib, _ = minilm_data
    feed = {k: v[:1] for k, v in np.load(calib).items()}
    gelu, fused = lowered(minilm_graph, fuse_erf_gelu)
    assert fused == 6 and "Erf" not in gelu.op_counts()
    summed, residuals = lowered(gelu, keep_residual_add_unfused)
    assert residuals == 13  # embeddings + 2 per layer
    np.testing.assert_allclose(run(summed, feed), run(minilm_graph, feed), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bits, signed, offsets", [(4, False, True), (8, False, True), (8, True, False), (4, True, False)])
def test_gguf_block_weights_on_matmul_nbits(tmp_path, bits, signed, offsets):
    """The gguf recipe's weight forms (q·scale − offset per block) on MatMulNBits, offsets taken out of the
    product, against the QDQ graph ORT runs in float."""
    from edgesdk.llm.gguf_formats import Split
    from edgesdk.quant.edit import GraphEditor
    from edgesdk.quant.passes.gguf_weights import _dequantize

    k, n, block = 256, 64, 32
    rng = np.random.default_rng(5)
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << (bits if bits == 4 else 5))
    split = Split(rng.integers(low, high, (n, k)).astype(np.int8 if signed else np.uint8),
                  rng.uniform(0.001, 0.02, (n, k // block)).astype(np.float32),
                  rng.uniform(0.0, 0.1, (n, k // block)).astype(np.float32) if offsets else None, block, bits)
    w = numpy_helper.from_array(np.zeros((k, n), np.float32), "w")
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="linear")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, n])], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), tmp_path / "m.onnx")
    g = edgesdk.load(tmp_path / "m.onnx")
    editor = GraphEditor(g.model.graph)
    weight = g.model.graph.initializers["w"]
    weight.replace_all_uses_with(_dequantize(editor, "w", split, transposed=True))
    editor.finish()
    x = rng.normal(size=(1, 5, k)).astype(np.float32)
    expected = x @ split.values().T
    np.testing.assert_allclose(run(g, {"x": x}), expected, rtol=1e-4, atol=1e-4)
    # Float activations (level 0): exact up to float rounding; an 8-bit weight runs as its two 4-bit halves.
    fused, count = lowered(g, lambda graph: lower_block_weights(graph, 0)["MatMulNBits"])
    assert count == (1 if bits == 4 else 2) and "DequantizeLinear" not in fused.op_counts()
    np.testing.assert_allclose(run(fused, {"x": x}), expected, rtol=1e-4, atol=1e-4)
    if bits == 8:  # int8 activations (level 4): one 8-bit kernel, close but not exact
        fused, count = lowered(g, lambda graph: lower_block_weights(graph, 4)["MatMulNBits"])
        assert count == 1
        np.testing.assert_allclose(run(fused, {"x": x}), expected, rtol=1e-4, atol=2e-2 * np.abs(expected).max())


def test_a_tied_8bit_table_is_stored_once_as_two_exact_halves(tmp_path):
    """Gather and the tied output layer (Gemm transB) on one 8-bit block table, float activations: both read
    the same two 4-bit halves, and both give the table's exact values."""
    from edgesdk.llm.gguf_formats import Split
    from edgesdk.quant.edit import GraphEditor
    from edgesdk.quant.passes.gguf_weights import _dequantize

    vocab, hidden, block = 50, 64, 32
    rng = np.random.default_rng(6)
    split = Split(rng.integers(-127, 128, (vocab, hidden)).astype(np.int8),
                  # GGUF scales are float16: 11 significant bits, so each half is exact in float32
                  rng.uniform(0.001, 0.02, (vocab, hidden // block)).astype(np.float16).astype(np.float32), None, block, 8)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], name="embed"),
             helper.make_node("Gemm", ["h", "table"], ["logits"], transB=1, name="output")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4]),
                                           helper.make_tensor_value_info("h", TensorProto.FLOAT, [3, hidden])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, 4, hidden]),
                               helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3, vocab])],
                              initializer=[numpy_helper.from_array(np.zeros((vocab, hidden), np.float32), "table")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), tmp_path / "m.onnx")
    g = edgesdk.load(tmp_path / "m.onnx")
    editor = GraphEditor(g.model.graph)
    g.model.graph.initializers["table"].replace_all_uses_with(_dequantize(editor, "table", split, transposed=False))
    editor.finish()
    fused, _ = lowered(g, lambda graph: lower_block_weights(graph, 0)["MatMulNBits"])
    counts = fused.op_counts()
    assert counts["com.microsoft::GatherBlockQuantized"] == 2 and counts["com.microsoft::MatMulNBits"] == 2
    assert len([name for name in fused.model.graph.initializers if name.endswith("_blocks")]) == 2  # high, low
    ids, h = np.array([[0, 7, 49, 7]]), rng.normal(size=(3, hidden)).astype(np.float32)
    rows, logits = ort_session(fused, optimization="basic").run(None, {"ids": ids, "h": h})
    table = split.values()
    np.testing.assert_array_equal(rows, table[ids])  # each row exact: the halves add up without rounding
    np.testing.assert_allclose(logits, h @ table.T, rtol=1e-4, atol=1e-4)
