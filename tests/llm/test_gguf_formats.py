"""Every registered GGUF block format against gguf-py's own dequantization (what transformers loads and what
llama.cpp computes): random block bytes, and the real tensors of Gemma 3 270M, must give the same float32
values bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from edgesdk.llm.gguf_formats import FORMATS

gguf = pytest.importorskip("gguf")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_random_blocks_split_without_loss(name):
    fmt = FORMATS[name]
    ggml_type = gguf.GGMLQuantizationType[name]
    elements, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
    assert elements == fmt.elements
    rows, cols = 6, 2 * elements
    raw = np.random.default_rng(0).integers(0, 256, (rows, cols // elements * type_size), dtype=np.uint8)
    expected = gguf.quants.dequantize(raw, ggml_type).reshape(rows, cols)
    split = fmt.split(raw, cols)
    assert split.q.dtype in (np.int8, np.uint8) and split.q.shape == (rows, cols)
    assert -(1 << (split.bits - 1)) <= int(split.q.min()) and int(split.q.max()) < (1 << split.bits)
    np.testing.assert_array_equal(split.values(), expected)  # NaN where gguf-py gives NaN (random fp16 bytes)


def test_the_real_tensors_of_a_gguf_file(gemma_gguf):
    reader = gguf.GGUFReader(gemma_gguf)
    seen = set()
    for tensor in reader.tensors:
        name = tensor.tensor_type.name
        if name not in FORMATS or name in seen:
            continue
        seen.add(name)
        cols = int(tensor.shape[0])
        raw = np.asarray(tensor.data)[:64]
        expected = gguf.quants.dequantize(raw, tensor.tensor_type).reshape(raw.shape[0], cols)
        np.testing.assert_array_equal(FORMATS[name].split(raw, cols).values(), expected)
    assert {"Q8_0", "Q5_0", "Q4_K", "Q6_K"} <= seen
