"""One accuracy figure from an accuracy document (a run's summary, a manifest): the worst output's mean cosine
against the float model, or an LM's next-token agreement with it. Runs, reports and regressions read it here."""

from __future__ import annotations

from typing import Any

COSINE, AGREEMENT = "cosine", "next-token agreement"


def worst_cosine(outputs: dict[str, Any]) -> float | None:
    """The lowest ``cosine_mean`` over outputs (None when none has one)."""
    values = [m["cosine_mean"] for m in outputs.values()
              if isinstance(m, dict) and isinstance(m.get("cosine_mean"), (int, float))]
    return float(min(values)) if values else None


def accuracy_figure(accuracy: dict[str, Any] | None) -> tuple[float, str] | None:
    """(value, metric) of ``{"next_token": {...}}`` or ``{output: {"cosine_mean": ...}}``; None when it holds
    neither."""
    accuracy = accuracy or {}
    if "next_token" in accuracy:
        value = (accuracy["next_token"] or {}).get("agreement_with_float")
        return (float(value), AGREEMENT) if isinstance(value, (int, float)) else None
    value = worst_cosine(accuracy)
    return None if value is None else (value, COSINE)
