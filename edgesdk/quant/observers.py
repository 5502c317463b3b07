"""Observers: what a quantization pass needs to know about an activation, gathered over calibration runs.

Each kind is one small class that registers itself by name; a pass says which kind it needs on which
tensors and ``stats.collect`` runs the calibration data through the graph once per group of them (the
groups bounded by the observers' memory). Adding a statistic is adding a class here, not a field to a
fixed statistics record."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

OBSERVERS: dict[str, type[Observer]] = {}

# A bounded, evenly spaced sample of each observed tensor's values is kept for percentile ranges.
_SAMPLE_PER_OBSERVATION = 1 << 12


def register(cls: type[Observer]) -> type[Observer]:
    OBSERVERS[cls.kind] = cls
    return cls


class Observer:
    """Accumulates one statistic of one tensor; the last axis is the channel axis."""

    kind: ClassVar[str]

    def observe(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def estimated_bytes(self, channels: int) -> int:
        """Memory the statistic will hold for a tensor with this many channels (to group observations)."""
        return 16 * channels


@register
class Ranges(Observer):
    """Range statistics: min/max, per-channel |max|, and a value sample for percentile ranges."""

    kind: ClassVar[str] = "ranges"

    def __init__(self) -> None:
        self.min, self.max = np.inf, -np.inf
        self.channel_min: np.ndarray | None = None  # per channel of the last axis
        self.channel_max: np.ndarray | None = None
        self._samples: list[np.ndarray] = []
        self._seen = 0

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        if x.ndim >= 2:
            rows = _rows(x)
            low, high = rows.min(axis=0), rows.max(axis=0)
            if self.channel_min is None:
                self.channel_min, self.channel_max = low, high
            else:
                self.channel_min, self.channel_max = np.minimum(self.channel_min, low), np.maximum(self.channel_max, high)
        flat = x.ravel()
        stride = max(1, flat.size // _SAMPLE_PER_OBSERVATION)
        self._samples.append(flat[self._seen % stride :: stride].copy())
        self._seen += 1

    @property
    def channel_absmax(self) -> np.ndarray | None:
        return None if self.channel_min is None else np.maximum(-self.channel_min, self.channel_max)

    def estimated_bytes(self, channels: int) -> int:
        return 8 * channels + 4 * _SAMPLE_PER_OBSERVATION * 64

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


@register
class ChannelMeanAbs(Observer):
    """Per-channel mean |x| over every row (token) seen: the salience AWQ scales weights by."""

    kind: ClassVar[str] = "mean_abs"

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.rows = 0

    def observe(self, x: np.ndarray) -> None:
        rows = _rows(x)
        sums = np.abs(rows).sum(axis=0, dtype=np.float64)
        self.total = sums if self.total is None else self.total + sums
        self.rows += rows.shape[0]

    @property
    def mean(self) -> np.ndarray:
        return (self.total / max(self.rows, 1)).astype(np.float32)


@register
class HeadChannelAbsMax(Observer):
    """Per head and channel |max| of a [batch, heads, tokens, channels] tensor: how far each channel of a
    KV cache's keys reaches (a few of them reach far: Qwen2.5's key bias)."""

    kind: ClassVar[str] = "head_channel_absmax"

    def __init__(self) -> None:
        self.absmax: np.ndarray | None = None  # [heads, channels]

    def observe(self, x: np.ndarray) -> None:
        if x.ndim != 4 or x.size == 0:
            return
        high = np.abs(np.asarray(x, np.float32)).max(axis=(0, 2))
        self.absmax = high if self.absmax is None else np.maximum(self.absmax, high)


@register
class Gram(Observer):
    """XᵀX over every row seen (the Hessian of a linear layer's squared output error, up to a factor 2):
    what GPTQ compensates rounding errors with."""

    kind: ClassVar[str] = "gram"

    def __init__(self) -> None:
        self.sum: np.ndarray | None = None
        self.rows = 0

    def observe(self, x: np.ndarray) -> None:
        rows = _rows(x)
        if self.sum is None:
            self.sum = rows.T @ rows
        else:
            self.sum += rows.T @ rows
        self.rows += rows.shape[0]

    def estimated_bytes(self, channels: int) -> int:
        return 8 * channels * channels  # the float32 sum and one run's product

    @property
    def hessian(self) -> np.ndarray:
        """XᵀX / rows, float64 (made when asked: one layer's at a time)."""
        return self.sum.astype(np.float64) / max(self.rows, 1)


@register
class RowSample(Observer):
    """An evenly spaced sample of rows (tokens), at most ``per_observation`` from each run and ``limit`` in
    all: what a pass that searches a scale replays its candidates on (AWQ, SmoothQuant's α)."""

    kind: ClassVar[str] = "rows"

    def __init__(self, limit: int = 1024, per_observation: int = 64) -> None:
        self.limit, self.per_observation = limit, per_observation
        self._rows: list[np.ndarray] = []
        self._count = 0

    @classmethod
    def spread(cls, limit: int, runs: int) -> RowSample:
        """A sample of ``limit`` rows taken evenly from ``runs`` calibration runs."""
        return cls(limit, -(-limit // max(runs, 1)))

    def observe(self, x: np.ndarray) -> None:
        if self._count >= self.limit:
            return
        rows = _rows(x)
        take = min(self.per_observation, self.limit - self._count, rows.shape[0])
        # the middles of ``take`` equal spans: not always the first row (a language model's BOS position
        # carries activations hundreds of times the others', and would weigh far more than its share)
        picked = rows[((np.arange(take) + 0.5) * rows.shape[0] / take).astype(int)].copy()
        self._rows.append(picked)
        self._count += take

    def estimated_bytes(self, channels: int) -> int:
        return 4 * channels * self.limit

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self._rows) if self._rows else np.zeros((0, 0), np.float32)


def _rows(x: np.ndarray) -> np.ndarray:
    """A tensor as float32 rows (tokens) of its last axis (channels)."""
    return np.asarray(x, np.float32).reshape(-1, x.shape[-1])


class Several(Observer):
    """Several kinds on one tensor in one calibration run: ``several["gram"]``."""

    kind: ClassVar[str] = "several"

    def __init__(self, *observers: Observer) -> None:
        self.parts = {o.kind: o for o in observers}

    def __getitem__(self, kind: str) -> Observer:
        return self.parts[kind]

    def observe(self, x: np.ndarray) -> None:
        for observer in self.parts.values():
            observer.observe(x)

    def estimated_bytes(self, channels: int) -> int:
        return sum(o.estimated_bytes(channels) for o in self.parts.values())
