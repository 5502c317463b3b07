"""Next-token metrics of a quantized LM against its float model on the same tokens, accumulated window by
window so a 262k-token vocabulary never sits in memory for more than one window."""

from __future__ import annotations

import dataclasses

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclasses.dataclass
class NextTokenStats:
    """Perplexity of both models on the text, top-1 agreement and mean KL(float ‖ quantized)."""

    tokens: int = 0
    nll: float = 0.0
    float_nll: float = 0.0
    agree: int = 0
    kl: float = 0.0

    def add(self, ids: np.ndarray, logits: np.ndarray, float_logits: np.ndarray) -> None:
        """``logits``/``float_logits`` [T, vocab] for the window ``ids`` [T]: position t predicts ids[t+1]."""
        ids = np.asarray(ids).reshape(-1)
        q = log_softmax(np.asarray(logits).reshape(len(ids), -1)[:-1])
        f = log_softmax(np.asarray(float_logits).reshape(len(ids), -1)[:-1])
        target = ids[1:]
        rows = np.arange(len(target))
        self.tokens += len(target)
        self.nll -= float(q[rows, target].sum())
        self.float_nll -= float(f[rows, target].sum())
        self.agree += int((q.argmax(-1) == f.argmax(-1)).sum())
        self.kl += float((np.exp(f) * (f - q)).sum())

    def to_json(self) -> dict[str, float | int]:
        n = max(self.tokens, 1)
        ppl, float_ppl = float(np.exp(self.nll / n)), float(np.exp(self.float_nll / n))
        return {
            "tokens": self.tokens,
            "perplexity": ppl,
            "float_perplexity": float_ppl,
            "perplexity_increase": ppl / float_ppl - 1.0,
            "next_token_agreement": self.agree / n,
            "kl_divergence": self.kl / n,
        }
