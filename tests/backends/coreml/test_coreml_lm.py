"""A causal LM through the Core ML backend: Gemma 3 270M (real weights) int4 in its static form, as one package
of two functions (prefill of 32 tokens, decode of one) with the KV cache as inputs and outputs. Checked where
Core ML does not run: the spec, the weights against the graph's (bit for bit), and the package's numbers (its
MIL program run by the numpy evaluator) against the ORT artifact of the same quantized graph."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import edgesdk
from edgesdk.backends import backend_for_artifact, get_backend
from edgesdk.backends.coreml.deployment import import_coremltools
from edgesdk.backends.coreml.evaluate import load_program
from edgesdk.backends.coreml.lowering import mil_name
from edgesdk.backends.coreml.weights import package_weights
from edgesdk.errors import UsageError
from edgesdk.llm.generate import generate_tokens
from edgesdk.llm.model import LanguageModel

from tests.backends.coreml.conftest import coreml_target, profile_on_mac

pytestmark = pytest.mark.heavy(120)  # seconds, about: Gemma lowered twice, converted, merged and evaluated

PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"


def _package(artifact):
    return artifact.path / "model.mlpackage"


def _runner(artifact):
    return backend_for_artifact(artifact.manifest).host_runner(artifact.model_path, artifact.manifest.backend_info)


def test_the_package_holds_prefill_and_decode_with_the_cache_as_inputs_and_outputs(gemma_coreml):
    ct = import_coremltools()
    spec = ct.models.MLModel(str(_package(gemma_coreml)), skip_model_load=True).get_spec()
    assert spec.specificationVersion == 9  # iOS18: the first to load a package of several functions
    assert spec.description.defaultFunctionName == "prefill"
    functions = {f.name: {i.name: list(i.type.multiArrayType.shape) for i in f.input} for f in spec.description.functions}
    assert sorted(functions) == ["decode", "prefill"]
    assert functions["prefill"]["input_ids"] == [1, 32] and functions["decode"]["input_ids"] == [1, 1]
    for shapes in functions.values():
        caches = [name for name in shapes if name.startswith("past_")]
        assert len(caches) == 18 * 2  # key and value of every layer
        assert all(shapes[name] == [1, 1, 64, 256] for name in caches)
    info = gemma_coreml.manifest.backend_info
    assert info["lm"] == {"prefill_tokens": 32, "context": 64}
    assert info["compute_precision"] == "float32"  # a causal LM's default: Gemma's residual stream passes float16's range
    program, _ = load_program(_package(gemma_coreml))
    ops = {op.op_type for op in program.functions["decode"].operations}
    assert {"scatter_nd", "constexpr_blockwise_shift_scale", "matmul", "softmax"} <= ops
    report = get_backend("coreml").describe(gemma_coreml.model_path)  # what inspect shows
    assert sorted(report["functions"]) == ["decode", "prefill"] and report["default_function"] == "prefill"
    assert report["deployment_target"] == "iOS18" and report["op_counts"]["scatter_nd"] == 18 * 2


def test_the_functions_share_one_copy_of_the_weights(gemma_coreml, gemma_static_int4_ort):
    """The merge stores a weight the two functions read once: the package is no larger than the ORT artifact's
    int4 model file (MatMulNBits holds the same 4-bit codes)."""
    package = sum(p.stat().st_size for p in _package(gemma_coreml).rglob("*") if p.is_file())
    ort = sum(p.stat().st_size for p in gemma_static_int4_ort.model_path.parent.glob("model.onnx*"))
    assert package < 1.1 * ort, (package, ort)


def test_every_quantized_weight_is_the_graphs_bit_for_bit(gemma_coreml, gemma_static_int4):
    program, _ = load_program(_package(gemma_coreml))
    stored = package_weights(program)
    dequantized = [node for node in gemma_static_int4.model.graph
                   if node.op_type == "DequantizeLinear" and node.inputs[0].const_value is not None]
    assert len(dequantized) > 18 * 7  # q, k, v, o, gate, up, down of every layer, and the embedding
    for node in dequantized:
        weight = stored[mil_name(node.outputs[0].name)]
        codes = node.inputs[0].const_value.numpy()
        assert weight["dtype"] == codes.dtype.name, node.name
        np.testing.assert_array_equal(weight["codes"].astype(np.int16), codes.astype(np.int16), err_msg=node.name)
        np.testing.assert_array_equal(weight["scale"].reshape(-1), node.inputs[1].const_value.numpy().reshape(-1),
                                      err_msg=node.name)


def test_the_programs_logits_and_greedy_tokens_match_the_ort_artifact(gemma_coreml, gemma_static_int4_ort):
    """A 39-token prompt: one prefill call of 32 tokens and 7 decode calls, then 8 greedy tokens fed back one by one."""
    lm = LanguageModel.from_manifest(gemma_coreml.manifest.language_model, gemma_coreml.path)
    ids = lm.encode(PROMPT)
    assert 32 < len(ids) < 64
    ours, ort = _runner(gemma_coreml), _runner(gemma_static_int4_ort)
    expected = ort(lm.prefill_feed(ids))
    got = ours(lm.prefill_feed(ids))
    error = np.abs(got["logits"] - expected["logits"]).mean()
    assert error < 1e-3, error
    for name in expected:
        if name.startswith("present."):
            np.testing.assert_allclose(got[name], expected[name], atol=1e-3, err_msg=name)
    assert generate_tokens(ours, lm, ids, 8, stop_at_eos=False)["tokens"] == \
        generate_tokens(ort, lm, ids, 8, stop_at_eos=False)["tokens"]


def test_the_export_scores_the_reference_as_ort_does(gemma_coreml, gemma_static_int4_ort):
    ours, ort = (a.manifest.accuracy["next_token"] for a in (gemma_coreml, gemma_static_int4_ort))
    assert ours["tokens"] == ort["tokens"] > 100
    assert abs(ours["perplexity"] / ort["perplexity"] - 1) < 1e-4, (ours, ort)
    assert ours["next_token_agreement"] == ort["next_token_agreement"]


def test_what_a_core_ml_lm_cannot_be_is_refused_with_what_to_do(gemma_static_int4, tmp_path):
    dynamic = dataclasses.replace(gemma_static_int4, lm=dataclasses.replace(gemma_static_int4.lm, context=None, form="dynamic"))
    with pytest.raises(UsageError, match="--context N"):
        edgesdk.export(dynamic, "macos-coreml", tmp_path / "dynamic")
    quantized_cache = dataclasses.replace(gemma_static_int4, lm=dataclasses.replace(gemma_static_int4.lm, kv_cache="int8"))
    with pytest.raises(UsageError, match="float KV cache"):
        edgesdk.export(quantized_cache, "macos-coreml", tmp_path / "kv8")
    float_graph = gemma_static_int4.float_graph  # fp32 alone would take iOS16; two functions take iOS18
    assert float_graph.lm is not None
    with pytest.raises(UsageError, match="two functions .* iOS18"):
        edgesdk.export(float_graph, coreml_target(deployment_target="iOS17"), tmp_path / "ios17")
    assert not any(tmp_path.iterdir())  # nothing left behind


def test_a_causal_lm_runs_on_the_mac_with_its_prefill_and_decode_functions(mac, gemma_coreml, tmp_path):
    """Gemma 3 270M int4: the runner loads both functions, takes the reference windows in prefill chunks and
    single decode steps, and decodes with the cache fed back: its next tokens are this host's."""
    _, device, _ = mac
    result = profile_on_mac(gemma_coreml, device, tmp_path, runs=4, warmup=0)
    assert result.accuracy["next_token"]["agreement_with_host"] == 1.0
    assert result.accuracy["next_token"]["positions"] > 100
    assert result.lm["decode_steps"] == 4 and len(result.lm["tokens"]) == 5
