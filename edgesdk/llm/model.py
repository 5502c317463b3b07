"""What edgesdk knows about a causal LM beside its graph: its shape, its cache and its tokenizer. A Graph
of a causal LM carries one (``graph.lm``); an LM artifact records it in its manifest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, first_line
from .builder import SCALE_SUFFIX, cache_names, kv_layout
from .config import DecoderConfig

TOKENIZER_DIR = "tokenizer"


@dataclasses.dataclass
class LanguageModel:
    config: DecoderConfig
    tokenizer: Any = None  # a transformers tokenizer; loaded from the artifact on demand
    form: str = "dynamic"
    context: int | None = None  # the static form's cache slots
    kv_cache: str = "float"  # or int8/int4: uint8 codes plus a (scale, offset) per head and token

    @property
    def max_tokens(self) -> int:
        """Prompt plus generated tokens the graph can hold."""
        return self.context or self.config.max_context

    @property
    def cache(self) -> list[tuple[str, str]]:
        """(input, output) names of the float cache tensors (the ones a quantized cache replaces)."""
        return cache_names(self.config.layers)

    @property
    def float_form(self) -> LanguageModel:
        """This LM as its float graph takes it (the float reference keeps a float cache)."""
        return dataclasses.replace(self, kv_cache="float")

    def cache_tensors(self) -> list[tuple[str, str, type, int]]:
        """(input, output, dtype, last dimension) of every tensor the graph's cache is fed as."""
        d = self.config.head_dim
        if self.kv_cache == "float":
            return [(past, present, np.float32, d) for past, present in self.cache]
        _, codes, scales = kv_layout(self.kv_cache, d)
        return [entry for past, present in self.cache
                for entry in ((past, present, np.uint8, codes), (past + SCALE_SUFFIX, present + SCALE_SUFFIX, np.float32, scales))]

    def empty_cache(self) -> dict[str, np.ndarray]:
        slots = (1, self.config.kv_heads, self.context or 0)
        return {past: np.zeros((*slots, width), dtype) for past, _, dtype, width in self.cache_tensors()}

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
        feed.update({past: outputs[present] for past, present, _, _ in self.cache_tensors()})
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
        return cls(DecoderConfig.model_validate(info.config), loaded, info.form, info.context, info.kv_cache)


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
