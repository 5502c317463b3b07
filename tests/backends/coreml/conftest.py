"""all-MiniLM-L6-v2 through the Core ML backend and through ONNX Runtime from the same quantized graphs, once
per session: the packages the tests check, and the ORT artifacts their numbers are held against."""

from __future__ import annotations

import dataclasses

import pytest

import edgesdk
from edgesdk.quant.recipes import get_recipe
from edgesdk.targets import load_target

from tests.devices.conftest import sshd  # noqa: F401  (the loopback OpenSSH server)


def coreml_target(**options):
    """macos-coreml with some of its options changed."""
    target = load_target("macos-coreml")
    changed = target.model_copy(update={"options": {**target.options, **options}})
    changed._backend_options = None  # validated again from the new options
    return changed


@pytest.fixture(scope="session")
def coreml_packages(workdir, minilm_quantized, minilm_artifacts, minilm_data):
    """(recipe, compute precision) -> the Core ML artifact, and (recipe, 'ort') -> the ORT one of the same graph
    (int4 with float activations: ORT's default int8 activations are not the graph's numbers)."""
    calib, _ = minilm_data
    made = {}

    def build(recipe: str, precision: str | None = None):
        precision = precision or ("float32" if recipe == "fp32" else "float16")  # the backend's default
        key = (recipe, precision)
        if key not in made:
            graph = minilm_quantized(recipe)
            if precision == "ort" and not recipe.startswith("int4"):
                made[key] = minilm_artifacts(recipe)  # the suite's ORT artifact of this recipe
                return made[key]
            if precision == "ort":  # int4 with float activations (ORT's default int8 ones are not the graph's numbers)
                graph = dataclasses.replace(graph, recipe=get_recipe(graph.recipe, float_activations=True))
                target = "host"
            else:
                target = coreml_target(compute_precision=precision)
            made[key] = edgesdk.export(graph, target, workdir / f"coreml-{recipe}-{precision}", reference_data=calib)
        return made[key]

    return build
