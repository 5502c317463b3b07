"""Shared fixtures: the real all-MiniLM-L6-v2 model, real text, and artifacts built from them once per run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import edgesdk
from edgesdk import progress
from edgesdk.zoo import minilm

progress.set_enabled(False)


def pytest_collection_modifyitems(config, items):
    """Modules marked `heavy(seconds)` (their fixtures convert large models for minutes) go first, the longest
    first: under pytest-xdist (`make test`: two workers, one module each at a time) they start at once beside
    the many small modules instead of running alone at the end."""
    def cost(item) -> float:
        heavy = item.get_closest_marker("heavy")
        return -heavy.args[0] if heavy else 0.0

    items.sort(key=cost)  # the longest first; stable: file order kept otherwise


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("edgesdk")


@pytest.fixture(scope="session")
def minilm_data(workdir):
    """(calibration npz, held-out npz) of tokenized standard-library sentences."""
    calibration, heldout = minilm.datasets(calibration=64, heldout=600)
    calib_path, heldout_path = workdir / "calib.npz", workdir / "heldout.npz"
    np.savez(calib_path, **calibration)
    np.savez(heldout_path, **heldout)
    return calib_path, heldout_path


@pytest.fixture(scope="session")
def minilm_graph():
    module, example, options = minilm.build_model()
    return edgesdk.load(module, example, **options)


@pytest.fixture(scope="session")
def minilm_onnx(workdir, minilm_graph):
    """The float model as an ONNX file with a 'sentence_embedding' output."""
    return minilm_graph.save(workdir / "minilm_fp32.onnx")


@pytest.fixture(scope="session")
def minilm_quantized(minilm_graph, minilm_data):
    """recipe -> the quantized MiniLM graph (QDQ), made on first use (every backend's artifacts start from it)."""
    from edgesdk.quant.recipes import REGISTRY

    calib, _ = minilm_data
    made: dict[str, object] = {}

    def build(recipe: str):
        if recipe not in made:
            made[recipe] = edgesdk.quantize(minilm_graph, recipe,
                                            calibration=calib if REGISTRY[recipe].needs_calibration else None)
        return made[recipe]

    return build


@pytest.fixture(scope="session")
def minilm_artifacts(workdir, minilm_quantized, minilm_data):
    """recipe name -> artifact directory, converted on first use."""
    calib, _ = minilm_data
    cache: dict[str, object] = {}

    def build(recipe: str):
        if recipe not in cache:
            cache[recipe] = edgesdk.export(minilm_quantized(recipe), "host", workdir / f"artifact-{recipe}", reference_data=calib)
        return cache[recipe]

    return build


@pytest.fixture(scope="session")
def torchscript_minilm(workdir):
    """MiniLM through the TorchScript exporter (opset 14): an ONNX file edgesdk's importer did not write."""
    import torch

    module, example, _ = minilm.build_model()
    path = workdir / "minilm_torchscript.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (), str(path), kwargs=example, input_names=minilm.INPUT_NAMES,
            output_names=["sentence_embedding"], dynamic_axes={k: {0: "batch", 1: "sequence"} for k in minilm.INPUT_NAMES},
            opset_version=14, dynamo=False,
        )
    return path
