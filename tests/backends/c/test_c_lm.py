"""A causal LM in C: Gemma 3 270M (real weights) int4 in its static form, the C package against the ORT int4
artifact of the same quantized graph computed with float activations (ORT's MatMulNBits at accuracy level 0,
what the C kernels compute): the same greedy tokens, the same next-token figures, and the LM runner protocol
of the package's harness on a device (reference windows, prefill, decode steps feeding back their token)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import edgesdk
from edgesdk.backends import backend_for_artifact
from edgesdk.errors import UsageError
from edgesdk.llm.generate import generate_tokens
from edgesdk.llm.model import LanguageModel

from tests.helpers import module_folder

CONTEXT = 64
NEW_TOKENS = 32
PROMPTS = ["def fibonacci(n):"]  # the runner-protocol test below decodes a second prompt (the reference's start)

pytestmark = pytest.mark.heavy(150)  # seconds, about: Gemma exported to C and to ORT


@pytest.fixture(scope="module")
def gemma_int4(gemma_static_int4):
    """The quantized static graph (context 64)."""
    assert gemma_static_int4.lm.context == CONTEXT
    return gemma_static_int4


@pytest.fixture(scope="module")
def artifacts(gemma_int4, gemma_static_int4_ort, tmp_path_factory):
    with module_folder(tmp_path_factory, "gemma-c") as work:
        yield {"host-c": edgesdk.export(gemma_int4, "host-c", work / "host-c"), "host": gemma_static_int4_ort}


def _generate(artifact, prompt) -> list[int]:
    lm = LanguageModel.from_manifest(artifact.manifest.language_model, artifact.path)
    run = backend_for_artifact(artifact.manifest).host_runner(artifact.model_path, artifact.manifest.backend_info)
    ids = lm.encode(prompt) if isinstance(prompt, str) else np.asarray(prompt, np.int64)
    return generate_tokens(run, lm, ids, NEW_TOKENS, stop_at_eos=False)["tokens"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_gemma_int4_in_c_generates_the_ort_artifacts_greedy_tokens(artifacts, prompt):
    """32 greedy tokens (also equal by hand on "The capital of France is", "Once upon a time, in a small
    village," and "import numpy as np\n"; each prompt costs 17 s here: the host runner starts the program
    for every call)."""
    c, ort = _generate(artifacts["host-c"], prompt), _generate(artifacts["host"], prompt)
    assert len(c) == NEW_TOKENS
    assert c == ort


def test_the_c_package_scores_the_reference_as_ort_does(artifacts):
    """Next-token figures on the artifact's reference windows (prefilled in chunks of 32 in C, whole in ORT)."""
    c, ort = (artifacts[t].manifest.accuracy["next_token"] for t in ("host-c", "host"))
    assert c["tokens"] == ort["tokens"] > 100
    assert abs(c["perplexity"] / ort["perplexity"] - 1) < 2e-3, (c, ort)
    assert abs(c["next_token_agreement"] - ort["next_token_agreement"]) <= 2 / c["tokens"], (c, ort)
    info = artifacts["host-c"].manifest.backend_info
    assert info["lm"] == {"prefill_tokens": 32, "context": CONTEXT}
    # the tied int4 table is read by the embedding Gather and the output Gemm: stored once per form, and the
    # KV cache is state: 18 layers x key and value x [1, 1, 64, 256] float32
    assert info["state_bytes"] == 18 * 2 * CONTEXT * 256 * 4


def test_the_lm_runner_protocol_of_the_harness(artifacts):
    """profile on the local device: the package built there, the reference windows' next tokens equal this
    host's, and the decoded tokens are the ORT artifact's greedy continuation of the same prompt."""
    artifact = artifacts["host-c"]
    result = edgesdk.profile(artifact, device="local", runs=12, warmup=1)
    assert result.accuracy["next_token"]["agreement_with_host"] == 1.0
    assert result.accuracy["next_token"]["positions"] > 100
    lm = result.lm
    assert lm["decode_steps"] == 12 and len(lm["tokens"]) == 13 and lm["time_to_first_token_ms"] > 0
    from edgesdk.devices.lm import prompt_ids

    ids = prompt_ids(artifact, None, 12)
    assert lm["prompt_tokens"] == len(ids)
    assert lm["tokens"] == _generate(artifacts["host"], ids)[:13]


def test_a_dynamic_or_quantized_cache_is_refused_with_what_to_do(gemma_int4, tmp_path):
    dynamic = dataclasses.replace(gemma_int4, lm=dataclasses.replace(gemma_int4.lm, context=None, form="dynamic"))
    with pytest.raises(UsageError, match="--context N"):
        edgesdk.export(dynamic, "host-c", tmp_path / "dynamic")
    int8_cache = dataclasses.replace(gemma_int4, lm=dataclasses.replace(gemma_int4.lm, kv_cache="int8"))
    with pytest.raises(UsageError, match="float KV cache"):
        edgesdk.export(int8_cache, "host-c", tmp_path / "kv8")
    assert not (tmp_path / "dynamic").exists() and not (tmp_path / "kv8").exists()
