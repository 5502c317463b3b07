"""The direct GGUF reader gives the weights transformers' GGUF loader gives, bit for bit, without building a
transformers model."""

from __future__ import annotations

import numpy as np
import pytest

from edgesdk.llm.config import DecoderConfig
from edgesdk.llm.gguf_source import GgufWeights, open_gguf
from edgesdk.llm.source import from_path


def test_every_weight_equals_transformers_loader(gemma_gguf, gemma_hf):
    model, _ = gemma_hf
    direct = from_path(gemma_gguf)
    assert direct.config.tied_embeddings
    compared = 0
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied: the embedding, compared under its own name
            continue
        ours = direct.weight(name)
        assert ours.shape == tuple(tensor.shape), name
        assert np.array_equal(ours, tensor.numpy()), name  # includes Gemma's norm gains (stored minus one)
        compared += 1
    assert compared == len(model.state_dict()) - 1


def test_llama_query_key_rows_come_back_in_rotate_half_order(tmp_path):
    """llama.cpp's converter interleaves each head's query/key rows; the reader undoes exactly that."""
    gguf = pytest.importorskip("gguf")
    heads, kv_heads, head_dim, hidden = 4, 2, 8, 32
    rng = np.random.default_rng(0)
    q = rng.standard_normal((heads * head_dim, hidden)).astype(np.float32)
    k = rng.standard_normal((kv_heads * head_dim, hidden)).astype(np.float32)

    def llama_cpp_permute(w, n):  # convert_hf_to_gguf.py's LlamaModel.permute
        return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    path = tmp_path / "tiny-llama.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("blk.0.attn_q.weight", llama_cpp_permute(q, heads))
    writer.add_tensor("blk.0.attn_k.weight", llama_cpp_permute(k, kv_heads))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = DecoderConfig(architecture="llama", layers=1, hidden=hidden, heads=heads, kv_heads=kv_heads,
                           head_dim=head_dim, intermediate=64, vocab=16, norm_eps=1e-5, max_context=64,
                           rope_theta=10000.0, query_scale=head_dim**-0.5)
    weights = GgufWeights(path, open_gguf(path), config)
    assert np.array_equal(weights("model.layers.0.self_attn.q_proj.weight"), q)
    assert np.array_equal(weights("model.layers.0.self_attn.k_proj.weight"), k)


def test_a_tensor_type_gguf_py_cannot_dequantize_is_named(tmp_path):
    gguf = pytest.importorskip("gguf")
    from edgesdk.errors import ModelError

    kind = gguf.GGMLQuantizationType.Q8_1
    elements, type_size = gguf.GGML_QUANT_SIZES[kind]
    path = tmp_path / "q8_1.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((4, 64 // elements * type_size), np.uint8), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = DecoderConfig(architecture="llama", layers=1, hidden=64, heads=2, kv_heads=2, head_dim=32,
                           intermediate=4, vocab=16, norm_eps=1e-5, max_context=64, rope_theta=10000.0,
                           query_scale=32**-0.5)
    weights = GgufWeights(path, open_gguf(path), config)
    with pytest.raises(ModelError, match=r"blk\.0\.ffn_up\.weight has type Q8_1, which gguf-py cannot dequantize"):
        weights("model.layers.0.mlp.up_proj.weight")
