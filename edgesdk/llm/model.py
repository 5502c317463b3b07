"""What edgesdk knows about a causal LM beside its graph: its shape, its cache and its tokenizer. A Graph
of a causal LM carries one (``graph.lm``); an LM artifact records it in its manifest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, first_line
from .builder import cache_names
from .config import DecoderConfig

TOKENIZER_DIR = "tokenizer"


@dataclasses.dataclass
class LanguageModel:
    config: DecoderConfig
    tokenizer: Any = None  # a transformers tokenizer; loaded from the artifact on demand
    form: str = "dynamic"
    context: int | None = None  # the static form's cache slots

    @property
    def max_tokens(self) -> int:
        """Prompt plus generated tokens the graph can hold."""
        return self.context or self.config.max_context

    @property
    def cache(self) -> list[tuple[str, str]]:
        return cache_names(self.config.layers)

    def empty_cache(self) -> dict[str, np.ndarray]:
        shape = (1, self.config.kv_heads, self.context or 0, self.config.head_dim)
        return {name: np.zeros(shape, np.float32) for name, _ in self.cache}

    def prefill_feed(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"input_ids": np.asarray(ids, np.int64).reshape(1, -1)}
        if self.context:
            feed["position"] = np.zeros(1, np.int64)
        return feed | self.empty_cache()

    def step_feed(self, ids: np.ndarray, outputs: dict[str, np.ndarray], position: int) -> dict[str, np.ndarray]:
        """The next call's feed: new tokens (the first at ``position``) and the cache the previous call returned."""
        feed = {"input_ids": np.asarray(ids, np.int64).reshape(1, -1)}
        if self.context:
            feed["position"] = np.array([position], np.int64)
        feed.update({past: outputs[present] for past, present in self.cache})
        return feed

    def encode(self, text: str, bos: bool = True) -> np.ndarray:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if bos and self.config.bos_token_id is not None:
            ids = [self.config.bos_token_id, *ids]
        return np.asarray(ids, np.int64)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(map(int, ids)), skip_special_tokens=True)

    def save_tokenizer(self, directory: Path) -> Path | None:
        if self.tokenizer is None:
            return None
        target = directory / TOKENIZER_DIR
        self.tokenizer.save_pretrained(target)
        return target

    @classmethod
    def from_manifest(cls, info: Any, artifact_dir: Path, tokenizer: bool = True) -> LanguageModel:
        """The artifact's LM; ``tokenizer=False`` skips loading the tokenizer (it takes about a second)."""
        loaded = None
        if tokenizer and info.tokenizer_dir:
            loaded = load_tokenizer(artifact_dir / info.tokenizer_dir)
        return cls(DecoderConfig.model_validate(info.config), loaded, info.form, info.context)


def load_tokenizer(directory: Path):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("transformers", "llm", "Tokenizing text for a language model") from None
    try:
        return AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise ModelError(f"{directory}: cannot load the tokenizer: {first_line(exc)}") from None
