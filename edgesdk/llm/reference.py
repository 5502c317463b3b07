"""The small reference an LM artifact carries: a few token windows and, per position, the float model's
top-k next tokens with their log-probabilities (not the whole vocabulary: Gemma's would be 1 MB a token)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import log_softmax

REFERENCE_FILE = "lm_reference.npz"
TOP_K = 8
WINDOWS = 2
WINDOW_TOKENS = 64


def top_k(logits: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """(indices int32 [T, k] best first, log-probabilities float32 [T, k])."""
    logp = log_softmax(np.asarray(logits).reshape(-1, np.shape(logits)[-1]))
    index = np.argpartition(-logp, k, axis=-1)[:, :k]
    order = np.argsort(-np.take_along_axis(logp, index, -1), axis=-1)
    index = np.take_along_axis(index, order, -1)
    return index.astype(np.int32), np.take_along_axis(logp, index, -1).astype(np.float32)


def write(directory: Path, windows: list[np.ndarray], float_logits: list[np.ndarray], host_argmax: list[np.ndarray]) -> str:
    """Per window: its ids, the float model's top-k, and the artifact's own best next token on this host
    (what a device running the same artifact should reproduce)."""
    arrays = {}
    for i, (ids, logits, best) in enumerate(zip(windows, float_logits, host_argmax)):
        index, logp = top_k(logits)
        arrays[f"w{i}_ids"], arrays[f"w{i}_top_index"], arrays[f"w{i}_top_logp"] = ids.astype(np.int64), index, logp
        arrays[f"w{i}_host_argmax"] = np.asarray(best, np.int32)
    np.savez(directory / REFERENCE_FILE, **arrays)
    return REFERENCE_FILE


def read(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def device_agreement(reference: dict[str, np.ndarray], device_argmax: dict[str, np.ndarray]) -> dict[str, float]:
    """The device's best next tokens on the reference windows against the float model's and this host's."""
    with_float = with_host = total = 0
    for key, best in device_argmax.items():
        window = key.removesuffix("_argmax")
        best = np.asarray(best).reshape(-1)
        with_float += int((best == reference[f"{window}_top_index"][:, 0]).sum())
        with_host += int((best == reference[f"{window}_host_argmax"]).sum())
        total += len(best)
    if not total:
        return {}  # the artifact has no reference windows
    return {"next_token": {"agreement_with_float": with_float / total, "agreement_with_host": with_host / total,
                           "positions": total}}
