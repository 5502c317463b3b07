"""ONNX -> TF ops -> TFLite: the lowering against ONNX Runtime, full int8 on a tiny Llama and the error
paths (unsupported operator, truncated file, int4)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgesdk
from edgesdk.backends.tflite import lowering
from edgesdk.backends.tflite.convert import convert
from edgesdk.backends.tflite.interpreter import describe, host_runner
from edgesdk.errors import ArtifactError, UnsupportedOperatorError, UsageError
from edgesdk.runtime import ort_session

from tests.backends.tflite.weights_check import assert_weights_are_the_graphs


def onnx_graph(tmp_path, nodes, inputs, outputs, initializers=(), opset=18, name="g"):
    """A Graph from onnx.helper parts: inputs/outputs as (name, TensorProto type, shape)."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10), path)
    return edgesdk.load(path)


def const(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


rng = np.random.default_rng(0)
X = rng.normal(0, 1, (2, 6, 8)).astype(np.float32)
F = TensorProto.FLOAT
I64 = TensorProto.INT64

# (id, nodes, initializers, output shape): every case reads x[2, 6, 8] and writes y.
CASES = [
    ("matmul_gemm", [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Reshape", ["h", "s"], ["f"]),
                     helper.make_node("Gemm", ["f", "g", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)],
     [("w", rng.normal(0, 1, (8, 4)).astype(np.float32)), ("s", np.array([12, 4])),
      ("g", rng.normal(0, 1, (3, 4)).astype(np.float32)), ("b", rng.normal(0, 1, (3,)).astype(np.float32))], [12, 3]),
    ("softmax_axis1", [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [], [2, 6, 8]),
    ("layernorm", [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-5)],
     [("g", rng.uniform(0.5, 1.5, 8).astype(np.float32)), ("b", rng.normal(0, 0.1, 8).astype(np.float32))], [2, 6, 8]),
    ("layernorm_decomposed", [
        helper.make_node("ReduceMean", ["x", "ax"], ["m"]), helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"]), helper.make_node("ReduceMean", ["p", "ax"], ["v"]),
        helper.make_node("Add", ["v", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]), helper.make_node("Mul", ["n", "g"], ["gn"]),
        helper.make_node("Add", ["gn", "b"], ["y"])],
     [("ax", np.array([-1])), ("two", np.float32(2.0)), ("eps", np.float32(1e-5)),
      ("g", rng.uniform(0.5, 1.5, 8).astype(np.float32)), ("b", rng.normal(0, 0.1, 8).astype(np.float32))], [2, 6, 8]),
    ("rmsnorm_decomposed", [
        helper.make_node("Pow", ["x", "two"], ["p"]), helper.make_node("ReduceMean", ["p", "ax"], ["v"]),
        helper.make_node("Add", ["v", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Reciprocal", ["sd"], ["r"]), helper.make_node("Mul", ["x", "r"], ["n"]),
        helper.make_node("Mul", ["g", "n"], ["y"])],
     [("ax", np.array([-1])), ("two", np.float32(2.0)), ("eps", np.float32(1e-6)),
      ("g", rng.uniform(0.5, 1.5, 8).astype(np.float32))], [2, 6, 8]),
    ("gelu_erf", [helper.make_node("Div", ["x", "sq2"], ["a"]), helper.make_node("Erf", ["a"], ["e"]),
                  helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["x", "e1"], ["m"]),
                  helper.make_node("Mul", ["m", "half"], ["y"])],
     [("sq2", np.float32(math.sqrt(2))), ("one", np.float32(1)), ("half", np.float32(0.5))], [2, 6, 8]),
    ("gelu_tanh", [helper.make_node("Pow", ["x", "three"], ["c"]), helper.make_node("Mul", ["c", "k"], ["ck"]),
                   helper.make_node("Add", ["x", "ck"], ["i"]), helper.make_node("Mul", ["i", "s"], ["si"]),
                   helper.make_node("Tanh", ["si"], ["t"]), helper.make_node("Add", ["t", "one"], ["t1"]),
                   helper.make_node("Mul", ["x", "half"], ["hx"]), helper.make_node("Mul", ["hx", "t1"], ["y"])],
     [("three", np.float32(3)), ("k", np.float32(0.044715)), ("s", np.float32(math.sqrt(2 / math.pi))),
      ("one", np.float32(1)), ("half", np.float32(0.5))], [2, 6, 8]),
    ("masked_mean", [  # sentence-transformers' mean pooling over the tokens a mask keeps
        helper.make_node("ReduceMean", ["x", "last"], ["r"]), helper.make_node("Greater", ["r", "zero"], ["keep"]),
        helper.make_node("Cast", ["keep"], ["m"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "m"], ["xm"]),
        helper.make_node("ReduceSum", ["xm", "tokens"], ["s"], keepdims=0),
        helper.make_node("ReduceSum", ["m", "tokens"], ["n"], keepdims=0),
        helper.make_node("Clip", ["n", "tiny"], ["c"]), helper.make_node("Div", ["s", "c"], ["y"])],
     [("last", np.array([-1])), ("zero", np.float32(0)), ("tokens", np.array([1])), ("tiny", np.float32(1e-9))], [2, 8]),
    ("erf_sigmoid_silu", [helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Sigmoid", ["x"], ["s"]),
                          helper.make_node("Mul", ["x", "s"], ["silu"]), helper.make_node("Add", ["e", "silu"], ["y"])],
     [], [2, 6, 8]),
    ("unary_math", [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Sqrt", ["a"], ["q"]),
                    helper.make_node("Sin", ["q"], ["s"]), helper.make_node("Cos", ["x"], ["c"]),
                    helper.make_node("Neg", ["c"], ["n"]), helper.make_node("Exp", ["n"], ["e"]),
                    helper.make_node("Add", ["s", "e"], ["t"]), helper.make_node("Clip", ["t", "lo", "hi"], ["y"])],
     [("lo", np.float32(-0.5)), ("hi", np.float32(1.2))], [2, 6, 8]),
    ("shape_plumbing", [
        helper.make_node("Shape", ["x"], ["sh"]), helper.make_node("Gather", ["sh", "i2"], ["d2"]),
        helper.make_node("Unsqueeze", ["d2", "z"], ["d2u"]), helper.make_node("Concat", ["m1", "d2u"], ["ns"], axis=0),
        helper.make_node("Reshape", ["x", "ns"], ["r"]), helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
        helper.make_node("Slice", ["t", "st", "en", "ax", "sp"], ["sl"]),
        helper.make_node("Split", ["sl", "sz"], ["a", "b"], axis=0), helper.make_node("Concat", ["b", "a"], ["y"], axis=0)],
     [("i2", np.array(2)), ("z", np.array([0])), ("m1", np.array([-1])), ("st", np.array([-1])),
      ("en", np.array([-1000])), ("ax", np.array([1])), ("sp", np.array([-2])), ("sz", np.array([3, 5]))], [8, 6]),
    ("masks_and_where", [
        helper.make_node("Shape", ["x"], ["sh"]), helper.make_node("Slice", ["sh", "one", "two"], ["sq"]),
        helper.make_node("Slice", ["sh", "two", "three"], ["width"]),
        helper.make_node("ConstantOfShape", ["width"], ["ones"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
        helper.make_node("Squeeze", ["sq"], ["n"]), helper.make_node("Range", ["zero", "n", "step"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "z"], ["row"]), helper.make_node("Unsqueeze", ["pos", "m1"], ["col"]),
        helper.make_node("GreaterOrEqual", ["col", "row"], ["causal"]),
        helper.make_node("Where", ["causal", "zf", "minf"], ["mask"]),
        helper.make_node("Trilu", ["mask_sq"], ["tri"], upper=0),
        helper.make_node("MatMul", ["x", "xt"], ["scores"]), helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"]), helper.make_node("IsNaN", ["p"], ["nan"]),
        helper.make_node("Where", ["nan", "zf", "p"], ["pp"]), helper.make_node("Expand", ["ones", "shp"], ["o"]),
        helper.make_node("Mul", ["pp", "tri"], ["pt"]), helper.make_node("MatMul", ["pt", "x"], ["ctx"]),
        helper.make_node("Add", ["ctx", "o"], ["y"])],
     [("one", np.array([1])), ("two", np.array([2])), ("three", np.array([3])), ("zero", np.array(0)), ("step", np.array(1)),
      ("z", np.array([0])), ("m1", np.array([-1])), ("zf", np.float32(0)), ("minf", np.float32(np.finfo(np.float32).min)),
      ("mask_sq", np.ones((6, 6), np.float32)), ("xt", rng.normal(0, 1, (8, 6)).astype(np.float32)),
      ("shp", np.array([2, 6, 1]))], [2, 6, 8]),
    ("reductions_cast", [
        helper.make_node("ReduceMax", ["x", "ax"], ["mx"], keepdims=0), helper.make_node("ArgMax", ["x"], ["am"], axis=-1, keepdims=0),
        helper.make_node("Cast", ["am"], ["amf"], to=TensorProto.FLOAT), helper.make_node("ReduceSum", ["x", "ax"], ["s"], keepdims=0),
        helper.make_node("CumSum", ["s", "cax"], ["cs"]), helper.make_node("Add", ["mx", "amf"], ["t"]),
        helper.make_node("Add", ["t", "cs"], ["y"])],
     [("ax", np.array([-1])), ("cax", np.array(1))], [2, 6]),
    ("quantize_dequantize", [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1), helper.make_node("MatMul", ["dq", "w"], ["h"]),
        helper.make_node("DynamicQuantizeLinear", ["h"], ["hq", "hs", "hz"]),
        helper.make_node("DequantizeLinear", ["hq", "hs", "hz"], ["y"])],
     [("s", np.float32(0.02)), ("zp", np.uint8(128)), ("wq", rng.integers(-127, 128, (8, 5)).astype(np.int8)),
      ("ws", rng.uniform(0.001, 0.01, 5).astype(np.float32)), ("wz", np.zeros(5, np.int8))], [2, 6, 5]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lowered_ops_match_onnxruntime(case, tmp_path):
    name, nodes, inits, out_shape = case
    graph = onnx_graph(tmp_path, nodes, [("x", F, [2, 6, 8])], [("y", F, out_shape)], inits, name=name)
    feed = {"x": X}
    expected = ort_session(graph).run(None, feed)[0]
    got = lowering.lower(graph, [feed], "fp32")(feed)["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5)


def test_fusions_find_the_patterns(tmp_path):
    """Decomposed LayerNorm/RMSNorm, both GELU forms and masked mean pooling become one op each."""
    found = {}
    for name, nodes, inits, shape in CASES:
        if name in ("layernorm_decomposed", "rmsnorm_decomposed", "gelu_erf", "gelu_tanh", "masked_mean"):
            graph = onnx_graph(tmp_path, nodes, [("x", F, [2, 6, 8])], [("y", F, shape)], inits, name=name)
            found[name] = {n.op_type for n in lowering.fuse(lowering.read_graph(graph)).nodes} - {"Constant"}
    assert found == {
        "layernorm_decomposed": {"LayerNormalization"}, "rmsnorm_decomposed": {"RMSNorm"},
        "gelu_erf": {"Gelu"}, "gelu_tanh": {"Gelu"}, "masked_mean": {"ReduceMean", "Greater", "Cast", "MaskedMean"},
    }


@pytest.fixture(scope="module")
def small_tflite(tmp_path_factory):
    """A float MLP-with-LayerNorm converted to TFLite: (path, io, graph)."""
    tmp = tmp_path_factory.mktemp("small")
    inits = CASES[2][2]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "bias"], ["x1"])] + [
        helper.make_node("LayerNormalization", ["x1", "g", "b"], ["y"], epsilon=1e-5)]
    inits = inits + [("w", rng.normal(0, 0.5, (8, 8)).astype(np.float32)), ("bias", rng.normal(0, 0.1, 8).astype(np.float32))]
    graph = onnx_graph(tmp, nodes, [("x", F, [1, 6, 8])], [("y", F, [1, 6, 8])], inits, name="small")
    feeds = [{"x": rng.normal(0, 1, (1, 6, 8)).astype(np.float32)} for _ in range(8)]
    flatbuffer, io = convert(graph, "fp32", feeds)
    path = tmp / "small.tflite"
    path.write_bytes(flatbuffer)
    return path, io, graph, feeds


def test_float_tflite_matches_onnxruntime(small_tflite):
    path, io, graph, feeds = small_tflite
    assert io == {"inputs": {"x": "x"}, "outputs": {"y": "y"}}
    run, session = host_runner(path, io, threads=1), ort_session(graph)
    for feed in feeds[:3]:
        np.testing.assert_allclose(run(feed)["y"], session.run(None, feed)[0], atol=1e-4)
    info = describe(path)
    assert not info["fully_int8"] and info["inputs"][0]["dtype"] == "float32"


def test_int8_io_model_takes_and_gives_int8(small_tflite, tmp_path):
    _, _, graph, feeds = small_tflite
    flatbuffer, io = convert(graph, "int8", feeds, int8_io=True)
    path = tmp_path / "io.tflite"
    path.write_bytes(flatbuffer)
    info = describe(path)
    assert info["fully_int8"], info["not_int8"]
    assert info["inputs"][0]["dtype"] == "int8" and info["outputs"][0]["dtype"] == "int8"
    assert "QUANTIZE" not in info["op_counts"] and "DEQUANTIZE" not in info["op_counts"]
    expected = ort_session(graph).run(None, feeds[0])[0]
    got = host_runner(path, io)(feeds[0])["y"]  # float in: quantized with the input's own scale
    assert got.dtype == np.float32
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99


def outlier_tokens(count: int, tokens: int = 48, channels: int = 32) -> list[dict[str, np.ndarray]]:
    """Feeds where two tokens carry a 60x channel: their Σ(x-mean)² is ~100x the ordinary tokens'."""
    feeds = []
    for _ in range(count):
        x = rng.normal(0, 1, (1, tokens, channels)).astype(np.float32)
        x[0, [0, 5], 3] = 60.0
        feeds.append({"x": x})
    return feeds


def test_int8_layernorm_scales_ordinary_tokens_beside_outlier_tokens(tmp_path):
    # One int8 grid for Σ(x-mean)² would give the ordinary tokens one or two levels, so their rsqrt (a
    # per-token scale) would be off by tens of percent; the output norm per token shows that scale.
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-5)]
    inits = [("g", np.ones(32, np.float32)), ("b", np.zeros(32, np.float32))]
    graph = onnx_graph(tmp_path, nodes, [("x", F, [1, 48, 32])], [("y", F, [1, 48, 32])], inits, name="ln_outliers")
    flatbuffer, io = convert(graph, "int8", outlier_tokens(16))
    path = tmp_path / "ln.tflite"
    path.write_bytes(flatbuffer)
    assert describe(path)["fully_int8"]
    run, session = host_runner(path, io, threads=1), ort_session(graph)
    for feed in outlier_tokens(3):
        got, expected = run(feed)["y"][0], session.run(None, feed)[0][0]
        ratio = np.linalg.norm(got, axis=-1) / np.linalg.norm(expected, axis=-1)
        assert np.abs(ratio - 1).max() < 0.05, ratio


def test_unsupported_operator_is_named_before_conversion(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="fine"), helper.make_node("Det", ["r"], ["y"], name="the_det")]
    graph = onnx_graph(tmp_path, nodes, [("x", F, [2, 8, 8])], [("y", F, [2])])
    with pytest.raises(UnsupportedOperatorError, match="Det.*'the_det'") as caught:
        convert(graph, "fp32", [{"x": rng.normal(0, 1, (2, 8, 8)).astype(np.float32)}])
    assert caught.value.node_name == "the_det" and caught.value.op_type == "Det"


def test_refusals_are_usage_errors(small_tflite):
    _, _, graph, feeds = small_tflite
    with pytest.raises(UsageError, match="use --recipe int8 or the onnxruntime target"):
        convert(graph, "int4", feeds)
    with pytest.raises(UsageError, match="int8 inputs/outputs"):
        convert(graph, "dynamic", feeds, int8_io=True)


@pytest.mark.parametrize("cut", [0, 100, None])
def test_truncated_or_foreign_file_is_an_artifact_error(small_tflite, tmp_path, cut):
    path, io, _, _ = small_tflite
    bad = tmp_path / "bad.tflite"
    data = path.read_bytes()
    bad.write_bytes(b"not a flatbuffer at all, just text\n" if cut is None else data[: cut or len(data) // 2])
    for call in (lambda: describe(bad), lambda: host_runner(bad, io)):
        with pytest.raises(ArtifactError, match="bad.tflite") as caught:
            call()
        assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------- tiny causal LM


@pytest.fixture(scope="module")
def tiny_llama():
    """A 2-layer Llama (hidden 64, 4 heads, 2 KV heads, vocabulary 256) with random weights, logits only."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    module = Logits(LlamaForCausalLM(config).eval())
    example = {"input_ids": torch.randint(0, 256, (1, 24)), "attention_mask": torch.ones(1, 24, dtype=torch.int64)}
    graph = edgesdk.load(module, example, input_names=["input_ids", "attention_mask"], output_names=["logits"])
    gen = np.random.default_rng(1)
    feeds = [{"input_ids": gen.integers(0, 256, (1, 24)), "attention_mask": np.ones((1, 24), np.int64)} for _ in range(16)]
    return graph, feeds


def test_tiny_llama_float_tflite_matches_onnxruntime(tiny_llama, tmp_path):
    graph, feeds = tiny_llama
    ops = graph.op_counts()
    assert {"Softmax", "Where", "Reciprocal", "Sigmoid"} <= set(ops)  # RMSNorm, SiLU and the causal mask are in
    flatbuffer, io = convert(graph, "fp32", feeds)
    (tmp_path / "llama.tflite").write_bytes(flatbuffer)
    run, session = host_runner(tmp_path / "llama.tflite", io), ort_session(graph)
    for feed in feeds[:3]:
        assert np.abs(run(feed)["logits"] - session.run(None, feed)[0]).max() < 1e-4


def test_tiny_llama_full_int8_and_dynamic(tiny_llama, tmp_path):
    graph, feeds = tiny_llama
    session = ort_session(graph)
    quantized = edgesdk.quantize(graph, "int8", calibration=feeds)
    flatbuffer, io = convert(quantized, "int8", feeds)
    (tmp_path / "int8.tflite").write_bytes(flatbuffer)
    info = describe(tmp_path / "int8.tflite")
    assert info["fully_int8"], info["not_int8"]
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "LOGISTIC"} <= set(info["op_counts"])
    run = host_runner(tmp_path / "int8.tflite", io)
    for feed in feeds[:3]:
        expected, got = session.run(None, feed)[0][0], run(feed)["logits"][0]
        cosine = (expected * got).sum(-1) / np.linalg.norm(expected, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cosine.mean() > 0.99

    dynamic = edgesdk.quantize(graph, "int8-dynamic")
    flatbuffer, io = convert(dynamic, "dynamic", feeds[:1])
    (tmp_path / "dynamic.tflite").write_bytes(flatbuffer)
    assert_weights_are_the_graphs(dynamic, tmp_path / "dynamic.tflite")
    got = host_runner(tmp_path / "dynamic.tflite", io)(feeds[0])["logits"]
    assert np.abs(got - session.run(None, feeds[0])[0]).max() < 0.05
