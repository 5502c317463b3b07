"""The shape of a decoder-only LM, read from a transformers config: what the graph builder needs and nothing
else. Architectures outside this list are refused by name, with the ones that are supported."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import ModelError

# transformers model_type -> the features that architecture uses
_FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {},
    "mistral": {},
    "qwen2": {"attention_bias": True},
    "qwen3": {"qk_norm": True},
    "gemma3_text": {
        "qk_norm": True,
        "norm_offset": 1.0,
        "sandwich_norms": True,
        "scaled_embedding": True,
        "activation": "gelu_tanh",
    },
}
SUPPORTED = sorted(_FAMILIES)


class DecoderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    architecture: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    norm_eps: float
    max_context: int
    activation: Literal["silu", "gelu_tanh"] = "silu"
    rope_theta: float
    rope_theta_sliding: float | None = None  # Gemma 3's local layers use their own base
    rope_scale: float = 1.0  # "linear" RoPE scaling divides positions by this factor
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()
    tied_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    norm_offset: float = 0.0  # Gemma stores RMSNorm gains as (gain - 1)
    sandwich_norms: bool = False  # Gemma 3: norms after attention and around the MLP too
    scaled_embedding: bool = False  # Gemma: embeddings multiplied by sqrt(hidden)
    query_scale: float
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _rope(hf: Any, layer_type: str) -> tuple[float, float]:
    """(theta, linear scale) for one layer type; transformers 5 keeps them in ``rope_parameters``."""
    params = getattr(hf, "rope_parameters", None) or {}
    if layer_type in params and isinstance(params[layer_type], dict):
        params = params[layer_type]
    theta = params.get("rope_theta", getattr(hf, "rope_theta", 10000.0))
    kind = params.get("rope_type", "default")
    if kind == "default":
        return float(theta), 1.0
    if kind == "linear":
        return float(theta), float(params["factor"])
    raise ModelError(f"{hf.model_type}: RoPE scaling '{kind}' is not supported (supported: default, linear)")


def from_transformers(hf: Any) -> DecoderConfig:
    """A DecoderConfig from a transformers ``PretrainedConfig`` of a causal LM."""
    hf = getattr(hf, "text_config", None) or hf  # multimodal wrappers keep the decoder in text_config
    kind = getattr(hf, "model_type", None)
    if kind not in _FAMILIES:
        raise ModelError(f"causal-LM architecture '{kind}' is not supported (supported: {', '.join(SUPPORTED)})")
    family = _FAMILIES[kind]
    activation = getattr(hf, "hidden_activation", None) or getattr(hf, "hidden_act", "silu")
    want = family.get("activation", "silu")
    if {"gelu_tanh": ("gelu_pytorch_tanh", "gelu_tanh"), "silu": ("silu", "swish")}[want].count(activation) == 0:
        raise ModelError(f"{kind}: activation '{activation}' is not supported for this architecture")
    if getattr(hf, "attn_logit_softcapping", None) or getattr(hf, "final_logit_softcapping", None):
        raise ModelError(f"{kind}: logit soft-capping is not supported")
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    layer_types = list(getattr(hf, "layer_types", None) or ["full_attention"] * hf.num_hidden_layers)
    sliding = tuple(i for i, t in enumerate(layer_types) if t == "sliding_attention")
    window = getattr(hf, "sliding_window", None) if sliding else None
    theta, scale = _rope(hf, "full_attention")
    theta_sliding = _rope(hf, "sliding_attention")[0] if sliding else None
    pre_scalar = getattr(hf, "query_pre_attn_scalar", None)
    eos = getattr(hf, "eos_token_id", None)
    return DecoderConfig(
        architecture=kind,
        layers=hf.num_hidden_layers,
        hidden=hf.hidden_size,
        heads=hf.num_attention_heads,
        kv_heads=getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
        head_dim=head_dim,
        intermediate=hf.intermediate_size,
        vocab=hf.vocab_size,
        norm_eps=float(hf.rms_norm_eps),
        max_context=int(getattr(hf, "max_position_embeddings", 4096)),
        activation=want,
        rope_theta=theta,
        rope_theta_sliding=theta_sliding,
        rope_scale=scale,
        sliding_window=window,
        sliding_layers=sliding if window else (),
        tied_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
        attention_bias=bool(family.get("attention_bias", getattr(hf, "attention_bias", False))),
        qk_norm=family.get("qk_norm", False),
        norm_offset=family.get("norm_offset", 0.0),
        sandwich_norms=family.get("sandwich_norms", False),
        scaled_embedding=family.get("scaled_embedding", False),
        query_scale=float((pre_scalar or head_dim) ** -0.5),
        bos_token_id=getattr(hf, "bos_token_id", None),
        eos_token_ids=tuple(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])),
    )
