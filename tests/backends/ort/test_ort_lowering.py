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
from edgesdk.quant.passes.weights import Int4WeightsPass
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
    Int4WeightsPass(block_size=16, symmetric=symmetric)(graph.model)
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
    fused, count = lowered(g, lambda graph: lower_block_weights(graph, 0)["MatMulNBits"])
    assert count == 1 and "DequantizeLinear" not in fused.op_counts()
    x = rng.normal(size=(1, 5, k)).astype(np.float32)
    expected = x @ split.values().T
    np.testing.assert_allclose(run(g, {"x": x}), expected, rtol=1e-4, atol=1e-4)
    # 8-bit blocks take int8 activations (backends/ort/blockwise.py): close, not exact
    tolerance = 1e-4 if bits == 4 else 2e-2 * np.abs(expected).max()
    np.testing.assert_allclose(run(fused, {"x": x}), expected, rtol=1e-4, atol=tolerance)
