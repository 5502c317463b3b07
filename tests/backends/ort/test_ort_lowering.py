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
