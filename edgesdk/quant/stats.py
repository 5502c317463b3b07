"""Observe activations: run the float graph on calibration feeds and keep per-tensor statistics."""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import progress
from ..calibration import CalibrationData
from ..graph import Graph
from ..runtime import WeightFedSession

# A bounded, evenly spaced sample of each observed tensor's values is kept for percentile ranges.
_SAMPLE_PER_OBSERVATION = 1 << 12


@dataclasses.dataclass
class TensorStats:
    """Range statistics of one activation over all calibration samples."""

    min: float = np.inf
    max: float = -np.inf
    channel_absmax: np.ndarray | None = None  # per channel of the last axis
    _samples: list[np.ndarray] = dataclasses.field(default_factory=list, repr=False)
    _seen: int = 0

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        if x.ndim >= 2:
            per_channel = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0)
            self.channel_absmax = per_channel if self.channel_absmax is None else np.maximum(self.channel_absmax, per_channel)
        flat = x.ravel()
        stride = max(1, flat.size // _SAMPLE_PER_OBSERVATION)
        self._samples.append(flat[self._seen % stride :: stride].copy())
        self._seen += 1

    def percentile_range(self, percentile: float) -> tuple[float, float]:
        """The [low, high] covering ``percentile`` % of values, never wider than the observed min/max."""
        values = np.concatenate(self._samples)
        low = float(np.percentile(values, 100.0 - percentile))
        high = float(np.percentile(values, percentile))
        return max(low, self.min), min(high, self.max)

    def range(self, percentile: float | None) -> tuple[float, float]:
        if percentile is None or percentile >= 100.0:
            return self.min, self.max
        return self.percentile_range(percentile)


def collect(graph: Graph, names: list[str], data: CalibrationData, limit: int | None = None) -> dict[str, TensorStats]:
    """Run ``graph`` on ``data`` exposing the tensors ``names`` as outputs; return their statistics."""
    # The weights are fed from the graph's own arrays: a language model's are not held twice.
    session = WeightFedSession(graph, outputs=names)
    stats = {name: TensorStats() for name in names}
    total = min(len(data), limit) if limit else len(data)
    for feed in progress.track(data.feeds(graph, limit), "calibrating", total=total):
        for name, array in zip(names, session.run(names, feed)):
            stats[name].observe(array)
    return stats
