"""The quantized KV cache on a small decoder built by edgesdk's own builder (random weights: the structure
under test; the accuracy on real weights is asserted on Gemma 3 270M in tests/llm): uint8 codes and
per-head, per-token (scale, offset) in and out, decode steps that agree with a prefill, both cache forms."""

from __future__ import annotations

import numpy as np
import pytest

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.graph import Graph
from edgesdk.llm.builder import build_decoder
from edgesdk.llm.config import DecoderConfig
from edgesdk.llm.model import LanguageModel
from edgesdk.quant.passes.kv_cache import key_channel_factors
from edgesdk.runtime import ort_session, run

CONFIG = DecoderConfig(architecture="llama", layers=2, hidden=64, heads=4, kv_heads=2, head_dim=64, intermediate=128,
                       vocab=96, norm_eps=1e-6, max_context=64, rope_theta=10000.0, query_scale=0.25)


def _shape(name: str) -> tuple[int, ...]:
    """The transformers shape of a parameter ([out, in] for a linear)."""
    c = CONFIG
    q, kv = c.heads * c.head_dim, c.kv_heads * c.head_dim
    shapes = {"embed_tokens": (c.vocab, c.hidden), "lm_head": (c.vocab, c.hidden), "q_proj": (q, c.hidden),
              "k_proj": (kv, c.hidden), "v_proj": (kv, c.hidden), "o_proj": (c.hidden, q),
              "gate_proj": (c.intermediate, c.hidden), "up_proj": (c.intermediate, c.hidden),
              "down_proj": (c.hidden, c.intermediate), "norm": (c.hidden,)}
    return shapes[next(key for key in shapes if key in name)]


def _decoder(context: int | None = None, key_outliers: float = 1.0) -> Graph:
    """The tiny decoder; ``key_outliers`` multiplies two channels of every key head (one rotary pair), as
    Qwen2.5's key bias makes a few channels reach far beyond the rest."""
    rng = np.random.default_rng(0)
    made: dict[str, np.ndarray] = {}

    def weight(name: str) -> np.ndarray:
        if name not in made:
            gain = "norm" in name  # RMSNorm gains near 1, linears and the embedding small
            made[name] = (float(gain) + rng.normal(0, 0.05 if gain else 0.15, _shape(name))).astype(np.float32)
            if "k_proj" in name:
                for head in range(CONFIG.kv_heads):
                    made[name][[head * CONFIG.head_dim + 5, head * CONFIG.head_dim + 5 + CONFIG.head_dim // 2]] *= key_outliers
        return made[name]

    graph = Graph(model=build_decoder(CONFIG, weight, "tiny", context), name="tiny")
    graph.lm = LanguageModel(CONFIG, None, "static" if context else "dynamic", context)
    return graph


def _prefill_then_steps(graph: Graph, ids: np.ndarray, steps: int) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """(logits of a prefill of all ids, the last ``steps`` tokens' logits one decode step at a time, the last outputs)."""
    lm, session = graph.lm, ort_session(graph)
    whole = run(session, lm.prefill_feed(ids))["logits"][0]
    outputs = run(session, lm.prefill_feed(ids[:-steps]))
    stepped = []
    for position in range(len(ids) - steps, len(ids)):
        outputs = run(session, lm.step_feed(ids[position:position + 1], outputs, position))
        stepped.append(outputs["logits"][0, 0])
    return whole, stepped, outputs


def _dequantized(codes: np.ndarray, scales: np.ndarray, kind: str) -> np.ndarray:
    """The cache's values from its codes and (scale, offset) pairs, by the layout the pass documents."""
    if kind == "int4":  # two codes a byte, the even value in the low nibble
        codes = np.stack([codes & 15, codes >> 4], axis=-1).reshape(*codes.shape[:-1], -1)
    groups = scales.shape[-1] // 2
    grouped = codes.astype(np.float32).reshape(*codes.shape[:-1], groups, -1)
    pairs = scales.reshape(*scales.shape[:-1], groups, 2)
    return (grouped * pairs[..., :1] + pairs[..., 1:]).reshape(codes.shape), pairs[..., 0]


@pytest.mark.parametrize("kind", ["int8", "int4"])
@pytest.mark.parametrize("context", [None, 32])
def test_the_cache_holds_each_value_to_half_a_step_and_decode_agrees_with_prefill(kind, context):
    graph = _decoder(context)
    ids = np.arange(3, 23) % CONFIG.vocab
    float_logits, _, float_outputs = _prefill_then_steps(graph, ids, 4)

    quantized = edgesdk.quantize(graph, "fp32", kv_cache=kind)
    assert quantized.lm.kv_cache == kind and graph.lm.kv_cache == "float"  # the float graph is untouched
    whole, stepped, outputs = _prefill_then_steps(quantized, ids, 4)
    # a step sees the cache a prefill made of the same tokens: the same logits to float rounding
    scale = np.abs(float_logits).max()
    for position, logits in zip(range(len(ids) - 4, len(ids)), stepped):
        np.testing.assert_allclose(logits, whole[position], atol=1e-4 * scale)

    codes, scales = outputs["present.0.key"], outputs["present.0.key_scale"]
    slots = context or len(ids)
    width = CONFIG.head_dim // 2 if kind == "int4" else CONFIG.head_dim
    groups = CONFIG.head_dim // 32 if kind == "int4" else 1  # int4: a (scale, offset) per block of 32
    assert codes.dtype == np.uint8 and codes.shape == (1, CONFIG.kv_heads, slots, width)
    assert scales.dtype == np.float32 and scales.shape == (1, CONFIG.kv_heads, slots, 2 * groups)
    # Layer 0's keys come before any attention, so the float model's are the values the cache quantized.
    values, steps = _dequantized(codes[:, :, :len(ids)], scales[:, :, :len(ids)], kind)
    expected = float_outputs["present.0.key"][:, :, :len(ids)]
    error = np.abs(values - expected).reshape(*steps.shape, -1)
    assert (error <= steps[..., None] / 2 + 1e-5).all()
    assert (steps > 0).all()


def test_int4_errs_more_than_int8_on_the_logits():
    graph = _decoder()
    ids = np.arange(3, 23) % CONFIG.vocab
    float_logits, _, _ = _prefill_then_steps(graph, ids, 1)
    error = {kind: np.abs(_prefill_then_steps(edgesdk.quantize(graph, "fp32", kv_cache=kind), ids, 1)[0] - float_logits).max()
             for kind in ("int8", "int4")}
    # int4's step is 17 times int8's (measured logit errors 0.029 and 0.36 of the largest logit)
    assert 0 < error["int8"] < 0.15 * error["int4"], error
    assert error["int4"] < 0.6 * np.abs(float_logits).max(), error


def test_calibrated_key_channels_keep_an_outlier_channel_from_crushing_the_others():
    graph = _decoder(key_outliers=30.0)
    ids = np.arange(3, 23) % CONFIG.vocab
    float_logits, _, _ = _prefill_then_steps(graph, ids, 1)
    calibration = CalibrationData([graph.lm.prefill_feed((np.arange(20) * 7 + start) % CONFIG.vocab) for start in range(4)], "ids")

    def error(quantized: Graph) -> float:
        return float(np.abs(_prefill_then_steps(quantized, ids, 1)[0] - float_logits).max())

    per_token = edgesdk.quantize(graph, "fp32", kv_cache="int8")
    per_channel = edgesdk.quantize(graph, "fp32", kv_cache="int8", calibration=calibration)
    assert per_token.report["kv_cache_keys"] == "per token only"
    assert per_channel.report["kv_cache_keys"] == "per-channel factors (calibrated)"
    # the factors follow the channels' reach: the outlier pair's is the largest of every head
    factors = key_channel_factors(graph, calibration)
    assert sorted(factors) == [f"past.{i}.key" for i in range(CONFIG.layers)]
    for factor in factors.values():
        assert factor.shape == (CONFIG.kv_heads, CONFIG.head_dim)
        assert (factor.argmax(axis=-1) % (CONFIG.head_dim // 2) == 5).all()
        np.testing.assert_allclose(factor.mean(axis=-1), 1.0, rtol=1e-5)
    # one scale per token spends its 255 levels on the outlier pair; the factors give them back
    assert error(per_channel) < 0.5 * error(per_token), (error(per_channel), error(per_token))


def test_kv_cache_on_a_model_without_a_cache_is_refused(tmp_path):
    from edgesdk.errors import UsageError
    from tests.helpers import mlp_model

    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))
    with pytest.raises(UsageError, match="kv_cache=int8 applies to causal language models"):
        edgesdk.quantize(graph, "int8-dynamic", kv_cache="int8")
    with pytest.raises(UsageError, match="'float', 'int8' or 'int4'"):
        edgesdk.quantize(graph, "int8-dynamic", kv_cache="int2")
