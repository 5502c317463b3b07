"""Run against run for CI: did latency, energy or accuracy get worse by more than a threshold?

The figures compared are each run's summary.json: p50 latency and energy per inference (worse when higher),
and accuracy on the device (worse when lower: the worst output's mean cosine, or an LM's next-token agreement
with the float model). A change is relative to the base run's figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .accuracy_figure import accuracy_figure
from .errors import UsageError

# name, unit, higher is worse
METRICS = (("p50 latency", "ms", True), ("energy per inference", "mJ", True), ("accuracy", "", False))


@dataclass
class Change:
    metric: str
    unit: str
    base: float
    new: float
    worse_by: float  # relative: +0.07 is 7 % worse, negative is better
    regressed: bool

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "unit": self.unit, "base": self.base, "new": self.new,
                "worse_by": self.worse_by, "regressed": self.regressed}

    def describe(self) -> str:
        return f"{self.metric} {self.worse_by * 100:+.3g}% ({self.base:.6g} -> {self.new:.6g}{' ' + self.unit if self.unit else ''})"


def parse_threshold(text: str) -> float:
    """'5%' or '5' -> 0.05."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise UsageError(f"--fail-on-regression: '{text}' is not a percentage (e.g. 5%)") from None
    if not value >= 0:  # NaN too
        raise UsageError(f"--fail-on-regression: {text} is negative (0% fails on any worsening)")
    return value / 100


def figures(summary: dict[str, Any]) -> dict[str, float]:
    """The compared figures a run measured (a figure it did not measure is absent)."""
    found: dict[str, float] = {}
    p50 = (summary.get("latency_ms") or {}).get("p50")
    if isinstance(p50, (int, float)):
        found["p50 latency"] = float(p50)
    energy = (summary.get("power") or {}).get("energy_per_inference_mj")
    if isinstance(energy, (int, float)):
        found["energy per inference"] = float(energy)
    accuracy = accuracy_figure(summary.get("accuracy"))
    if accuracy is not None:
        found["accuracy"] = accuracy[0]
    return found


def compare(base: dict[str, Any], new: dict[str, Any], threshold: float,
            max_accuracy_drop: float | None = None) -> list[Change]:
    """Each figure both runs measured; ``max_accuracy_drop`` (absolute) also fails a smaller accuracy loss."""
    before, after = figures(base), figures(new)
    changes = []
    for metric, unit, higher_is_worse in METRICS:
        if metric not in before or metric not in after:
            continue
        b, n = before[metric], after[metric]
        worse_by = ((n - b) if higher_is_worse else (b - n)) / abs(b) if b else 0.0
        regressed = worse_by > threshold
        if metric == "accuracy" and max_accuracy_drop is not None:
            regressed = regressed or (b - n) > max_accuracy_drop
        changes.append(Change(metric, unit, b, n, worse_by, regressed))
    return changes
