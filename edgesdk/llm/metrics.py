"""Next-token metrics of a quantized LM against its float model on the same tokens, accumulated window by
window so a 262k-token vocabulary never sits in memory for more than one window."""

from __future__ import annotations

import dataclasses

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class FloatWindow:
    """What the float model's logits on one window give every row compared with it (the 262k-word softmax
    is the costly part: computed once per window, not once per row)."""

    log_probs: np.ndarray  # [T-1, vocab], float64
    probs: np.ndarray
    top: np.ndarray  # [T-1]: the float model's next token
    nll: float  # its negative log-likelihood of the window's next tokens

    @classmethod
    def of(cls, ids: np.ndarray, float_logits: np.ndarray) -> FloatWindow:
        ids = np.asarray(ids).reshape(-1)
        f = log_softmax(np.asarray(float_logits).reshape(len(ids), -1)[:-1])
        return cls(f, np.exp(f), f.argmax(-1), -float(f[np.arange(len(ids) - 1), ids[1:]].sum()))


@dataclasses.dataclass
class NextTokenStats:
    """Perplexity of both models on the text, top-1 agreement and mean KL(float ‖ quantized)."""

    tokens: int = 0
    nll: float = 0.0
    float_nll: float = 0.0
    agree: int = 0
    kl: float = 0.0

    def add(self, ids: np.ndarray, logits: np.ndarray, float_logits: np.ndarray | FloatWindow) -> None:
        """``logits``/``float_logits`` [T, vocab] for the window ``ids`` [T]: position t predicts ids[t+1]. Rows
        compared with one float model on one window may share its FloatWindow (computed once)."""
        ids = np.asarray(ids).reshape(-1)
        reference = float_logits if isinstance(float_logits, FloatWindow) else FloatWindow.of(ids, float_logits)
        q = log_softmax(np.asarray(logits).reshape(len(ids), -1)[:-1])
        target = ids[1:]
        rows = np.arange(len(target))
        self.tokens += len(target)
        self.nll -= float(q[rows, target].sum())
        self.float_nll += reference.nll
        self.agree += int((q.argmax(-1) == reference.top).sum())
        self.kl += float((reference.probs * (reference.log_probs - q)).sum())

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
