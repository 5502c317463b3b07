"""Recipes: typed options, clear refusals, and every registered recipe converts the real MiniLM model."""

from __future__ import annotations

import pytest

import edgesdk
from edgesdk.errors import UsageError
from edgesdk.inspection import inspect
from edgesdk.quant.recipes import REGISTRY, get_recipe


def test_unknown_recipe_lists_the_known_ones():
    known = "fp32, gguf, int4, int4-awq, int4-gptq, int4-rtn, int8, int8-dynamic, int8-weights"
    with pytest.raises(UsageError, match=rf"unknown recipe 'int3' \(known: {known}\)"):
        get_recipe("int3")


def test_options_are_typed_and_checked():
    assert get_recipe("int4", block_size=64).block_size == 64
    with pytest.raises(UsageError, match="block_size: Input should be 16, 32, 64 or 128"):
        get_recipe("int4", block_size=48)
    with pytest.raises(UsageError, match="smoothing: Unexpected keyword argument"):
        get_recipe("int8", smoothing=0.5)
    with pytest.raises(UsageError, match="rounding: Input should be 'rtn', 'awq' or 'gptq'"):
        get_recipe("int4", rounding="hqq")
    with pytest.raises(UsageError, match="rounding: Input should be 'awq'"):  # the named recipe fixes its method
        get_recipe("int4-awq", rounding="gptq")
    with pytest.raises(UsageError, match="output_bits: Input should be 4 or 8"):
        get_recipe("int4-gptq", output_bits=6)


def test_calibrated_int4_without_data_says_what_it_needs(minilm_graph):
    from edgesdk.errors import CalibrationError

    with pytest.raises(CalibrationError, match=r"recipe 'int4-gptq \(rounding gptq\)' needs calibration data"):
        edgesdk.quantize(minilm_graph, "int4-gptq")


@pytest.mark.parametrize("recipe", sorted(r for r, cls in REGISTRY.items() if cls.takes == "any model"))
def test_every_recipe_converts_minilm(recipe, minilm_artifacts):
    """Loops over the registry, so a recipe added tomorrow is tested the day it is added (a recipe for one
    kind of model only, such as gguf, is tested with that model: tests/llm/)."""
    artifact = minilm_artifacts(recipe)
    manifest = artifact.manifest
    assert manifest.recipe.name == recipe
    assert set(manifest.device_files) <= set(manifest.files)
    accuracy = manifest.accuracy["outputs"]["sentence_embedding"]
    assert accuracy["cosine_min"] > 0.9  # measured at export on the reference inputs
    size = manifest.files["model.onnx"].bytes
    float_size = manifest.files["float/model.onnx"].bytes
    assert size < float_size * (1.01 if recipe == "fp32" else 0.3)


def test_a_recipe_for_one_kind_of_model_refuses_others(minilm_graph):
    for recipe in (r for r, cls in REGISTRY.items() if cls.takes != "any model"):
        with pytest.raises(UsageError, match=f"recipe '{recipe}'"):
            edgesdk.quantize(minilm_graph, recipe)


def test_int8_artifact_is_what_the_recipe_says(minilm_artifacts):
    report = inspect(minilm_artifacts("int8").path)
    quantized = report["quantized"]
    kernels = [k["kernel"] for k in quantized["kernels"]]
    # 36 linear layers as ORT integer kernels with static activation ranges, 3 int8 embedding tables.
    assert kernels.count("MatMulIntegerToFloat") == 36
    assert len([a for a in quantized["activations"] if a["scale"] != "dynamic"]) == 24  # shared QKV inputs
    assert report["ops"].get("Softmax") == 6 and report["ops"].get("LayerNormalization", 0) + report["ops"].get("SkipLayerNormalization", 0) >= 12
    assert report["weight_bytes_by_dtype"]["int8"] > 20e6


def test_int4_artifact_uses_int4_kernels(minilm_artifacts):
    report = inspect(minilm_artifacts("int4").path)
    kernels = report["quantized"]["kernels"]
    assert sum(k["kernel"] == "MatMulNBits" and k["bits"] == 4 and k["block_size"] == 32 for k in kernels) == 36
    assert sum(k["kernel"] == "GatherBlockQuantized" for k in kernels) == 3


def test_quantize_keeps_the_float_graph(minilm_graph):
    quantized = edgesdk.quantize(minilm_graph, "int8-dynamic")
    assert quantized.float_graph is minilm_graph
    assert not minilm_graph.is_quantized and quantized.is_quantized
