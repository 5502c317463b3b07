"""Accuracy of outputs against a float reference: cosine similarity per sample, max absolute error,
and top-1 agreement for classifier-shaped outputs. Shared by export, verify and on-device profiling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rows(array: np.ndarray) -> np.ndarray:
    """One row per sample: flatten everything after the batch axis (a scalar output is one row)."""
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(1, -1) if array.ndim <= 1 else array.reshape(array.shape[0], -1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _rows(a), _rows(b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    # Two all-zero rows agree perfectly; one zero row against a non-zero one does not.
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1), np.where(np.abs(a).sum(1) + np.abs(b).sum(1) == 0, 1.0, 0.0))


CLASSIFIER_HINTS = ("logit", "prob", "class", "score")


def is_classifier_output(name: str, array: np.ndarray) -> bool:
    """[batch, classes] outputs named like logits/probabilities/scores get a top-1 agreement figure."""
    return array.ndim == 2 and array.shape[1] > 1 and any(h in name.lower() for h in CLASSIFIER_HINTS)


def compare(
    actual: Sequence[dict[str, np.ndarray]],
    expected: Sequence[dict[str, np.ndarray]],
    classifier_outputs: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Per output name: cosine_mean, cosine_min, max_abs_error, and top1_agreement for classifier outputs
    (named in ``classifier_outputs`` or recognised by :func:`is_classifier_output`)."""
    if len(actual) != len(expected):
        raise ValueError(f"{len(actual)} results against {len(expected)} references")
    result: dict[str, dict[str, float]] = {}
    for name in expected[0]:
        cosines, max_error, agree, total = [], 0.0, 0, 0
        for got, want in zip(actual, expected):
            a, b = np.asarray(got[name]), np.asarray(want[name])
            if a.shape != b.shape:
                raise ValueError(f"output '{name}' has shape {list(a.shape)}, the reference {list(b.shape)}")
            if not np.issubdtype(b.dtype, np.floating):
                cosines.append(np.array([1.0 if np.array_equal(a, b) else 0.0]))
                continue
            cosines.append(cosine(a, b))
            max_error = max(max_error, float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0)
            if name in classifier_outputs or is_classifier_output(name, b):  # does the arg-max class agree?
                agree += int((a.argmax(1) == b.argmax(1)).sum())
                total += b.shape[0]
        all_cos = np.concatenate(cosines)
        entry = {"cosine_mean": float(all_cos.mean()), "cosine_min": float(all_cos.min()), "max_abs_error": max_error}
        if total:
            entry["top1_agreement"] = agree / total
        result[name] = entry
    return result
