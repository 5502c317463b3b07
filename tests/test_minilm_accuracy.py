"""Accuracy of each recipe on all-MiniLM-L6-v2 against the float model: mean-pooled sentence embeddings
of 600 held-out standard-library sentences (disjoint from the 64 calibration sentences)."""

from __future__ import annotations

import pytest

import edgesdk


@pytest.fixture(scope="session")
def verified(minilm_artifacts, minilm_data):
    _, heldout = minilm_data
    cache = {}

    def run(recipe):
        if recipe not in cache:
            cache[recipe] = edgesdk.verify(minilm_artifacts(recipe), heldout)
        return cache[recipe]

    return run


def test_int8_is_accurate(verified):
    report = verified("int8")
    emb = report["outputs"]["sentence_embedding"]
    assert report["samples"] == 600
    assert emb["cosine_mean"] >= 0.995, emb
    assert emb["cosine_min"] >= 0.98, emb


def test_int4_is_accurate_and_small(verified, minilm_artifacts):
    emb = verified("int4")["outputs"]["sentence_embedding"]
    assert emb["cosine_mean"] >= 0.97, emb
    files = minilm_artifacts("int4").manifest.files
    ratio = files["model.onnx"].bytes / files["float/model.onnx"].bytes
    assert ratio <= 0.18, f"int4 file is {ratio:.1%} of fp32"


def test_int8_dynamic_is_accurate(verified):
    emb = verified("int8-dynamic")["outputs"]["sentence_embedding"]
    assert emb["cosine_mean"] >= 0.99, emb


def test_fp32_artifact_equals_the_float_model(verified):
    emb = verified("fp32")["outputs"]["sentence_embedding"]
    assert emb["cosine_min"] > 0.99999 and emb["max_abs_error"] < 1e-4


def test_accuracy_at_export_agrees_with_verify(minilm_artifacts, minilm_data):
    """The manifest's accuracy is measured on the stored reference inputs; verify on them agrees."""
    artifact = minilm_artifacts("int8")
    feeds, _ = artifact.reference()
    report = edgesdk.verify(artifact, feeds)
    at_export = artifact.manifest.accuracy["outputs"]["sentence_embedding"]
    assert report["outputs"]["sentence_embedding"]["cosine_mean"] == pytest.approx(at_export["cosine_mean"], abs=1e-6)


def test_smoothquant_is_what_makes_int8_accurate(minilm_graph, minilm_data, verified, tmp_path):
    """Same recipe without SmoothQuant: the outlier channels cost accuracy (the reason it is in the recipe)."""
    calib, heldout = minilm_data
    plain = edgesdk.quantize(minilm_graph, "int8", calibration=calib, smooth_alpha=0.0)
    assert "smoothed_activations" not in plain.report
    report = edgesdk.verify(edgesdk.export(plain, "host", tmp_path / "int8-plain"), heldout)
    without = report["outputs"]["sentence_embedding"]["cosine_mean"]
    with_smoothing = verified("int8")["outputs"]["sentence_embedding"]["cosine_mean"]
    assert with_smoothing - without > 0.002, (with_smoothing, without)
