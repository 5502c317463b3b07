"""The decoder graph against transformers on the same weights: prefill logits, decode steps that reuse the
cache, greedy generation token for token; the tied embedding stored once; every output typed."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgesdk.runtime import ort_session, run

PROMPT = "def parse_args(argv):\n    \"\"\"Parse the command line and return the options.\"\"\"\n    parser = argparse."


def _logits_from_transformers(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(ids[None])).logits[0].numpy()


def test_prefill_and_decode_match_transformers(gemma_hf, gemma_graph):
    model, _ = gemma_hf
    lm = gemma_graph.lm
    ids = lm.encode(PROMPT)
    expected = _logits_from_transformers(model, ids)
    session = ort_session(gemma_graph)

    prefill = run(session, lm.prefill_feed(ids))
    assert np.abs(prefill["logits"][0] - expected).max() < 1e-3 * np.abs(expected).max()
    assert (prefill["logits"][0].argmax(-1) == expected.argmax(-1)).all()

    # Prefill all but the last four tokens, then one token per call with the returned cache.
    outputs = run(session, lm.prefill_feed(ids[:-4]))
    for position in range(len(ids) - 4, len(ids)):
        outputs = run(session, lm.step_feed(ids[position:position + 1], outputs, position))
        assert outputs["present.0.key"].shape[2] == position + 1  # the cache grew by one token, no re-run
        step = outputs["logits"][0, 0]
        assert np.abs(step - expected[position]).max() < 1e-3 * np.abs(expected).max()


def test_greedy_generation_equals_transformers(gemma_hf, gemma_graph):
    import torch

    from edgesdk.llm.generate import generate_tokens

    model, _ = gemma_hf
    lm = gemma_graph.lm
    ids = lm.encode("The json module can")
    session = ort_session(gemma_graph)
    ours = generate_tokens(lambda feed: run(session, feed), lm, ids, max_tokens=16)["tokens"]
    with torch.no_grad():
        theirs = model.generate(torch.from_numpy(ids[None]), max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
    assert ours == theirs[: len(ours)] and len(ours) >= min(16, len(theirs))


def test_tied_embedding_is_stored_once(gemma_graph):
    c = gemma_graph.lm.config
    tables = [v for v in gemma_graph.model.graph.initializers.values() if v.const_value.size >= c.vocab * c.hidden]
    assert c.tied_embeddings and len(tables) == 1
    readers = {use.node.op_type for use in tables[0].uses()}
    assert readers == {"Gather", "Gemm"}  # the embedding lookup and the output layer


def test_every_output_keeps_its_type(gemma_graph):
    for value in gemma_graph.model.graph.outputs:
        assert value.dtype == ir.DataType.FLOAT and value.shape is not None, value.name


def test_the_static_form_matches_transformers(gemma_hf):
    """Fixed cache slots written at `position`: prefill of a prompt, then single-token steps, as the
    dynamic form and transformers compute them; the cache never changes shape."""
    import edgesdk

    model, tokenizer = gemma_hf
    graph = edgesdk.load(model, tokenizer=tokenizer, context=48)
    lm = graph.lm
    assert lm.form == "static" and [s.shape for s in graph.inputs if s.name == "past.0.key"] == [(1, 1, 48, 256)]
    ids = lm.encode(PROMPT)
    expected = _logits_from_transformers(model, ids)
    session = ort_session(graph)
    outputs = run(session, lm.prefill_feed(ids[:-3]))
    assert np.abs(outputs["logits"][0] - expected[:-3]).max() < 1e-3 * np.abs(expected).max()
    for position in range(len(ids) - 3, len(ids)):
        outputs = run(session, lm.step_feed(ids[position:position + 1], outputs, position))
        assert outputs["present.17.value"].shape == (1, 1, 48, 256)
        assert np.abs(outputs["logits"][0, 0] - expected[position]).max() < 1e-3 * np.abs(expected).max()


def test_a_prompt_longer_than_the_static_context(gemma_hf):
    import pytest

    import edgesdk
    from edgesdk.llm.generate import generate_tokens

    model, tokenizer = gemma_hf
    lm = edgesdk.load(model, tokenizer=tokenizer, context=16).lm
    with pytest.raises(edgesdk.EdgeSDKError, match="exceeds the model's static context of 16 tokens"):
        generate_tokens(lambda feed: None, lm, lm.encode(PROMPT), max_tokens=4)
