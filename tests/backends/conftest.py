"""Gemma 3 270M's static int4 graph and its ORT artifact, made once for the C and Core ML backends' tests."""

from __future__ import annotations

import pytest

from tests.llm.conftest import gemma_gguf  # noqa: F401  (Gemma 3 270M's GGUF file, real weights)


@pytest.fixture(scope="session")
def gemma_static_int4(gemma_gguf):  # noqa: F811  (the imported fixture)
    """Gemma 3 270M in its static form (a KV cache of 64 slots), int4 weights with float activations (what the C
    and Core ML backends compute)."""
    import edgesdk

    graph = edgesdk.load(str(gemma_gguf), context=64)
    return edgesdk.quantize(graph, "int4", float_activations=True)


@pytest.fixture(scope="session")
def gemma_static_int4_ort(gemma_static_int4, tmp_path_factory):
    """The ORT artifact of ``gemma_static_int4`` (the numbers the other backends are held against)."""
    import edgesdk

    return edgesdk.export(gemma_static_int4, "host", tmp_path_factory.mktemp("gemma-ort") / "int4")
