"""A ``.gguf`` file as a causal-LM source, read straight from the file: the config and tokenizer through
transformers (metadata only), each weight dequantized by gguf-py from the memory-mapped file only when the
builder asks for it. transformers' own GGUF loader builds a whole float model first (peak ~3× the fp32
size); this way the peak is the graph being built plus one tensor.

The weights are the ones transformers' loader gives, bit for bit: the same gguf-py dequantization and the
same fix-ups (llama's query/key rows un-permuted, Gemma's RMSNorm gains stored minus one)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError, first_line
from .config import SUPPORTED, DecoderConfig

GGUF_ARCHITECTURES = {"gemma3": "gemma3_text"}  # GGUF architecture -> transformers model_type, where they differ


def _gguf():
    try:
        import gguf
    except ImportError:
        raise MissingDependencyError("gguf", "llm", "Reading a GGUF file") from None
    return gguf


def open_gguf(path: Path):
    """A GGUFReader on a supported architecture, or a one-line error for a truncated or foreign file."""
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable GGUF file (truncated or not GGUF): {first_line(exc)}") from None
    architecture = architecture_of(reader)
    if GGUF_ARCHITECTURES.get(architecture, architecture) not in SUPPORTED:
        raise ModelError(f"{path}: GGUF architecture '{architecture}' is not supported (supported: {', '.join(SUPPORTED)})")
    return reader


def architecture_of(reader) -> str:
    field = reader.fields.get("general.architecture")
    return str(field.contents()) if field is not None else "unknown"


class GgufWeights:
    """transformers parameter name -> float32 array, dequantized from the file on demand."""

    def __init__(self, path: Path, reader, config: DecoderConfig):
        gguf = _gguf()
        self.path, self.config = path, config
        arch = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[architecture_of(reader)]
        self.names = gguf.get_tensor_name_map(arch, config.layers)
        self.tensors = {t.name: t for t in reader.tensors}

    def tensor_for(self, name: str):
        """The file's tensor that holds transformers parameter ``name``, or None."""
        return self.tensors.get(self.names.get_name(name, try_suffixes=(".weight", ".bias")) or "")

    def __call__(self, name: str) -> np.ndarray:
        tensor = self.tensor_for(name)
        if tensor is None:
            raise ModelError(f"{self.path}: the file has no tensor for weight '{name}' (architecture {self.config.architecture})")
        return self._as_transformers(name, _dequantized(self.path, tensor))

    def _as_transformers(self, name: str, array: np.ndarray) -> np.ndarray:
        c = self.config
        heads = interleaved_heads(c, name)
        if heads:
            return rotate_half_rows(array, heads)
        if c.norm_offset and name.endswith("norm.weight"):
            return array - np.float32(c.norm_offset)  # the file stores the gain itself; transformers gain − 1
        return array


ROWS_PER_CHUNK = 4096  # gguf-py's dequantization makes several temporaries of its input's size


def _dequantized(path: Path, tensor) -> np.ndarray:
    """float32 values of a GGUF tensor in transformers' shape, dequantized a few thousand rows at a time so
    the temporaries stay small (a 150k-row vocabulary table would otherwise take ~4× its float size)."""
    from gguf.quants import dequantize

    shape = [int(n) for n in reversed(tensor.shape)]
    data = np.asarray(tensor.data)
    rows = data.reshape(data.shape[0], -1) if data.ndim > 1 else data.reshape(1, -1)
    out = np.empty((rows.shape[0], int(np.prod(shape)) // rows.shape[0]), np.float32)
    try:
        for start in range(0, rows.shape[0], ROWS_PER_CHUNK):
            chunk = dequantize(rows[start:start + ROWS_PER_CHUNK], tensor.tensor_type)
            out[start:start + ROWS_PER_CHUNK] = chunk.reshape(len(chunk), -1)
    except NotImplementedError:
        raise ModelError(f"{path}: tensor {tensor.name} has type {tensor.tensor_type.name}, which gguf-py cannot "
                         "dequantize") from None
    return out.reshape(shape)


def interleaved_heads(config: DecoderConfig, name: str) -> int:
    """llama.cpp stores llama's query/key rows interleaved for its RoPE: the number of heads to un-permute
    in weight ``name``, or 0."""
    if config.architecture != "llama" or not name.endswith(("q_proj.weight", "k_proj.weight")):
        return 0
    return config.heads if name.endswith("q_proj.weight") else config.kv_heads


def rotate_half_rows(array: np.ndarray, heads: int) -> np.ndarray:
    """Rows of each head from llama.cpp's interleaved order back to transformers' rotate-half order."""
    return array.reshape(heads, array.shape[0] // heads // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


@contextlib.contextmanager
def parsed_once(path: Path, reader=None):
    """transformers parses the file again for its config, its tokenizer and its model, each a new GGUFReader
    (gguf-py reads a 262144-word vocabulary in ~9 s): while this holds, a GGUFReader of ``path`` is one
    reader (``reader``, or one opened here), read-only and shared."""
    gguf = _gguf()
    original, wanted = gguf.GGUFReader, Path(path).resolve()
    reader = reader if reader is not None else original(wanted)

    def shared(file, *args, **kwargs):
        if not args and not kwargs and Path(file).resolve() == wanted:
            return reader
        return original(file, *args, **kwargs)

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def load_gguf(path: Path) -> tuple[DecoderConfig, GgufWeights, Any]:
    """(config, weights, tokenizer) of a .gguf file, without building a transformers model."""
    from .config import from_transformers
    from .source import transformers_module

    reader = open_gguf(path)
    transformers = transformers_module()
    try:
        with parsed_once(path, reader):
            hf_config = transformers.AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
            tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:
        raise ModelError(f"{path}: transformers cannot read its config or tokenizer: {first_line(exc)}") from None
    config = from_transformers(hf_config)
    return config, GgufWeights(path, reader, config), tokenizer
